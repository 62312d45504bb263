"""The one call that turns texts into vectors of an embedding space (ingestion's side of the provider).

Both the pipeline (new chunks) and the space builder (existing chunks, new model) embed through here, so the
request and its checks are the same for every stored vector.
"""

from __future__ import annotations

from genapi import BadResponseError, get_client
from ingestion.models import EmbeddingSpace

# Inputs per embeddings call; the pipeline moves progress counters after each.
EMBED_BATCH_SIZE = 256


def texts_embed(space: EmbeddingSpace, inputs: list[str]) -> list[list[float]]:
    """One vector per input, in `space`'s model and size (a wrong size is the provider's error)."""
    # base64: a quarter of the bytes of a JSON float list and far cheaper to decode (the client
    # accepts floats too, for servers that ignore the option).
    result = get_client().embeddings_create(
        space.model,
        inputs,
        dimensions=space.dimensions if space.send_dimensions else None,
        encoding_format="base64",
    )
    for vector in result.vectors:
        if len(vector) != space.dimensions:
            raise BadResponseError(
                f"The model {space.model} returned {len(vector)} dimensions; "
                f"its space has {space.dimensions}."
            )
    return result.vectors
