"""Small result types returned by the client."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Usage:
    prompt_tokens: int = 0
    total_tokens: int = 0


@dataclass
class EmbeddingsResult:
    vectors: list[list[float]]
    model: str
    usage: Usage = field(default_factory=Usage)
    calls: int = 0  # provider calls made (inputs are split to the limits)


@dataclass(frozen=True)
class RerankHit:
    index: int
    relevance_score: float
    document: str | None = None
