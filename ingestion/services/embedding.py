"""The one call that turns texts into vectors of an embedding space (ingestion's side of the provider).

Both the pipeline (new chunks) and the space builder (existing chunks, new model) embed through here, so the
request and its checks are the same for every stored vector.
"""

from __future__ import annotations

from genapi.embeddings import texts_embed as genapi_texts_embed
from genapi.limiter import estimate_tokens
from ingestion.models import EmbeddingSpace

# Inputs per embeddings call; the pipeline moves progress counters after each.
EMBED_BATCH_SIZE = 256


def texts_embed(space: EmbeddingSpace, inputs: list[str]) -> list[list[float]]:
    """One vector per input, in `space`'s model and size (a wrong size is the provider's error)."""
    return texts_embed_counted(space, inputs)[0]


def texts_embed_counted(space: EmbeddingSpace, inputs: list[str]) -> tuple[list[list[float]], list[int]]:
    """The vectors, and the provider's tokens for the call split over the inputs (in proportion to their
    estimated size, the split summing exactly to what the provider counted): what each document cost."""
    # genapi's one embedding function: the same request and checks as search's query embedding.
    result = genapi_texts_embed(
        inputs,
        model=space.model,
        dimensions=space.dimensions if space.send_dimensions else None,
        expect_dimensions=space.dimensions,
    )
    return result.vectors, tokens_split(result.usage.prompt_tokens, [estimate_tokens(t) for t in inputs])


def tokens_split(total: int, weights: list[int]) -> list[int]:
    """`total` shared out by `weights` (largest remainders), so the parts add up to `total` exactly."""
    if not weights:
        return []
    weight_sum = sum(weights)
    if weight_sum <= 0:
        weights, weight_sum = [1] * len(weights), len(weights)
    exact = [total * w / weight_sum for w in weights]
    parts = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] - parts[i], reverse=True)
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts
