"""Provider prices, EUR per million tokens as [input, output], and the cost of recorded usage.

The defaults are the Scaleway Generative APIs list prices when this was written (check your bill: prices
change, and the free tier is not modelled). RAG_PROVIDER_PRICES (JSON) adds or overrides models, e.g.
`{"my-model": [0.2, 0.6]}`. A model with no price costs 0 and is shown as unpriced. The local stand-in's
models are free.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings

DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "bge-multilingual-gemma2": (0.10, 0.0),
    "qwen3-embedding-8b": (0.10, 0.0),
    "mistral-small-3.2-24b-instruct-2506": (0.15, 0.35),
    "llama-3.3-70b-instruct": (0.90, 0.90),
    # Billed per audio minute by the provider; tokens here are the transcript's, so this is a floor.
    "whisper-large-v3": (0.0, 0.0),
    "all-minilm-l6-v2": (0.0, 0.0),
}


def prices() -> dict[str, tuple[float, float]]:
    merged = dict(DEFAULT_PRICES)
    for model, pair in (settings.RAG_PROVIDER_PRICES or {}).items():
        merged[model] = (float(pair[0]), float(pair[1]))
    return merged


def cost_eur(model: str, input_tokens: int, output_tokens: int) -> Decimal | None:
    """The cost in EUR, or None when the model has no price."""
    price = prices().get(model)
    if price is None:
        return None
    total = Decimal(str(price[0])) * input_tokens + Decimal(str(price[1])) * output_tokens
    return (total / Decimal(1_000_000)).quantize(Decimal("0.000001"))
