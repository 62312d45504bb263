"""The Generative APIs client: one pooled httpx client per process, retries, a limiter, one error taxonomy.

`GenAPIClient` is the transport (`genapi.transport`) plus one mixin per endpoint family: models, embeddings
and rerank (`endpoints_vectors`), chat and responses (`endpoints_generation`), audio and batches
(`endpoints_files`).
"""

from __future__ import annotations

import threading

from genapi.config import GenAPIConfig
from genapi.endpoints_files import FileEndpoints
from genapi.endpoints_generation import GenerationEndpoints
from genapi.endpoints_vectors import VectorEndpoints


class GenAPIClient(VectorEndpoints, GenerationEndpoints, FileEndpoints):
    """Speaks the Scaleway Generative APIs contract (and any OpenAI-compatible server).

    Thread-safe. After ``fork()`` the child builds its own connection pool and limiter on first use.
    ``sleep`` is the function used between retries (injectable for tests); ``event_hooks`` and ``transport``
    go to the underlying ``httpx.Client``.
    """


_client: GenAPIClient | None = None
_client_lock = threading.Lock()


def get_client() -> GenAPIClient:
    """The process-wide client, built from the environment on first use (pool is re-made after fork)."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = GenAPIClient(GenAPIConfig.from_env())
    return _client


def reset_client() -> None:
    """Forget the process-wide client (tests change the environment between cases)."""
    global _client
    with _client_lock:
        old, _client = _client, None
    if old is not None:
        old.close()
