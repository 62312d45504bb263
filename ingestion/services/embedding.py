"""The one call that turns texts into vectors of an embedding space (ingestion's side of the provider).

Both the pipeline (new chunks) and the space builder (existing chunks, new model) embed through here, so the
request and its checks are the same for every stored vector.
"""

from __future__ import annotations

from genapi.embeddings import texts_embed as genapi_texts_embed
from ingestion.models import EmbeddingSpace

# Inputs per embeddings call; the pipeline moves progress counters after each.
EMBED_BATCH_SIZE = 256


def texts_embed(space: EmbeddingSpace, inputs: list[str]) -> list[list[float]]:
    """One vector per input, in `space`'s model and size (a wrong size is the provider's error)."""
    # genapi's one embedding function: the same request and checks as search's query embedding.
    return genapi_texts_embed(
        inputs,
        model=space.model,
        dimensions=space.dimensions if space.send_dimensions else None,
        expect_dimensions=space.dimensions,
    ).vectors
