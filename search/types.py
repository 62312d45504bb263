"""Plain result types shared by retrieval, answering, the REST API, the page and the OpenAI-compatible API."""

from __future__ import annotations

import copy
import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any


def passage_url(document_id: int, chunk_id: int) -> str:
    """Where a reader checks a citation: the document, scrolled to the passage."""
    return f"/documents/{document_id}?chunk={chunk_id}"


@dataclass
class SearchFilters:
    """Narrowing applied inside the retrieval SQL (never after it, so k rows still come back)."""

    document_ids: list[int] | None = None
    metadata: dict[str, Any] | None = None
    mime_types: list[str] | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None

    @classmethod
    def from_value(cls, value: SearchFilters | dict[str, Any] | None) -> SearchFilters:
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        mime = value.get("mime_types", value.get("mime_type"))
        if isinstance(mime, str):
            mime = [mime]
        return cls(
            document_ids=list(value["document_ids"]) if value.get("document_ids") else None,
            metadata=dict(value["metadata"]) if value.get("metadata") else None,
            mime_types=list(mime) if mime else None,
            created_after=value.get("created_after"),
            created_before=value.get("created_before"),
        )

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v not in (None, [], {})}
        for key in ("created_after", "created_before"):
            if key in out:
                out[key] = out[key].isoformat()
        return out


@dataclass
class Passage:
    """A retrieved chunk with where it came from and how it scored."""

    chunk_id: int
    document_id: int
    collection_id: int
    title: str
    text: str
    page: int | None
    char_start: int
    char_end: int
    ordinal: int = 0
    heading_path: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    mime_type: str = ""
    score: float = 0.0
    fused_score: float = 0.0
    vector_rank: int | None = None
    fulltext_rank: int | None = None
    rerank_score: float | None = None
    highlights: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return passage_url(self.document_id, self.chunk_id)

    def as_dict(self) -> dict[str, Any]:
        # As dataclasses.asdict, without its field-by-field recursion (a search renders 8-100 of these):
        # the fields are scalars but for metadata (nested JSON: deep-copied as asdict did) and highlights.
        data = {name: getattr(self, name) for name in _PASSAGE_FIELDS}
        data["metadata"] = copy.deepcopy(self.metadata) if self.metadata else {}
        data["highlights"] = list(self.highlights)
        data["url"] = self.url
        return data


_PASSAGE_FIELDS = tuple(f.name for f in fields(Passage))


@dataclass
class Citation:
    """One `[n]` marker of an answer, resolved to the passage it points at."""

    n: int
    document_id: int
    chunk_id: int
    title: str
    page: int | None
    char_start: int
    char_end: int
    snippet: str
    url: str
    # Set by the citation check (search/citation_check.py): whether every sentence citing this passage is
    # supported by it, and the lowest support score; None when the check is off.
    supported: bool | None = None
    score: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Timings:
    """Milliseconds per stage of one request (`embed`, `vector`, `fulltext`, `fuse`, `load`, `rerank`,
    `highlight`, `answer`, ..., and `total`), so a slow request says where its time went.

    Stages may overlap (the query embedding runs while the full-text leg queries the database), so they
    need not add up to `total`. Thread-safe enough for that one overlap: each stage writes its own key.
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, (time.perf_counter() - t0) * 1000)

    def add(self, name: str, ms: float) -> None:
        self.ms[name] = round(self.ms.get(name, 0.0) + ms, 1)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def as_dict(self) -> dict[str, float]:
        """The stages and `total` (time since this object was made)."""
        return {**self.ms, "total": round(self.elapsed_ms(), 1)}


@dataclass
class RetrievalResult:
    passages: list[Passage]
    reranked: bool
    mode: str
    query: str
    took_ms: int = 0
    candidates: int = 0
    # Milliseconds per stage (Timings.as_dict()).
    timings: dict[str, float] = field(default_factory=dict)
    # Rerank tokens billed for this search (query tokens once per passage sent + the passages' tokens;
    # 0 when the rerank was skipped or came from the cache), and whether the cache answered.
    rerank_tokens: int = 0
    rerank_cached: bool = False
    query_log_id: int | None = None  # the QueryLog row (feedback refers to it)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passages": [p.as_dict() for p in self.passages],
            "reranked": self.reranked,
            "mode": self.mode,
            "query": self.query,
            "took_ms": self.took_ms,
            "candidates": self.candidates,
            "timings": dict(self.timings),
            "rerank_tokens": self.rerank_tokens,
            "rerank_cached": self.rerank_cached,
        }


@dataclass
class Answer:
    """A composed answer. `passages` are the numbered sources the model saw ([1] is passages[0])."""

    text: str
    citations: list[Citation]
    passages: list[Passage]
    model: str
    api: str
    usage: dict[str, int] = field(default_factory=lambda: {"input_tokens": 0, "output_tokens": 0})
    reranked: bool = False
    took_ms: int = 0
    search_query: str = ""
    found: bool = True
    query_log_id: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    rerank_tokens: int = 0
    rewrite_method: str = "none"
    # One per (marker, cited passage): search.citation_check.CitationCheck.as_dict() rows.
    citation_checks: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "query_id": self.query_log_id,
            "answer": self.text,
            "citation_checks": [dict(c) for c in self.citation_checks],
            "citations": [c.as_dict() for c in self.citations],
            "passages": [p.as_dict() for p in self.passages],
            "model": self.model,
            "api": self.api,
            "usage": dict(self.usage),
            "reranked": self.reranked,
            "took_ms": self.took_ms,
            "search_query": self.search_query,
            "rewrite_method": self.rewrite_method,
            "found": self.found,
            "timings": dict(self.timings),
            "rerank_tokens": self.rerank_tokens,
        }
