"""The one embedding function: passages at ingestion and queries at search time ask for vectors the same way.

The same request for both sides is what makes a query comparable with the stored passages: same model, same
`dimensions` sent (or not), same encoding. base64 is a quarter of the bytes of a JSON float list and far
cheaper to decode; the client still accepts float lists from servers that ignore the option.
"""

from __future__ import annotations

from genapi.client import GenAPIClient, get_client
from genapi.errors import BadResponseError
from genapi.types import EmbeddingsResult


def texts_embed(
    texts: list[str],
    *,
    model: str,
    dimensions: int | None = None,
    expect_dimensions: int | None = None,
    client: GenAPIClient | None = None,
) -> EmbeddingsResult:
    """Vectors for `texts`, in order (`.vectors`, `.usage`, `.model`, `.calls`).

    `dimensions` is sent to the model (leave it None for models that do not take it); `expect_dimensions`
    is the length every vector must have (the embedding space's), checked here so both callers fail the same
    way: a `BadResponseError`. Provider failures raise the rest of the `GenAPIError` taxonomy.
    """
    result = (client or get_client()).embeddings_create(
        model, list(texts), dimensions=dimensions, encoding_format="base64"
    )
    wanted = expect_dimensions if expect_dimensions is not None else dimensions
    if wanted is not None:
        for vector in result.vectors:
            if len(vector) != wanted:
                raise BadResponseError(
                    f"The model {model} returned {len(vector)} dimensions; {wanted} were expected."
                )
    return result
