"""Ingestion writes, one module per job (import the function from its module):

- `collections`: create collections;
- `documents`: store, update, bulk-add, re-ingest and delete documents (each queues its ingestion);
- `pipeline`: what a worker does with queued documents: claim, parse, chunk, embed, write results, sweep;
- `embedding`: the one call that turns texts into vectors of an embedding space;
- `spaces`: embedding spaces: the active one, create, build, fill, activate, retire, and their indexes;
- `errors`: the exceptions these raise for callers to show.

Services import `ingestion.tasks` only inside functions, to enqueue; tasks import services.
"""
