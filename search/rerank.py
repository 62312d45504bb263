"""Second-stage ranking by the provider's reranker, within a token budget, degrading to the fused order
when it fails.

The provider bills a rerank as (query tokens x passages sent) + the passages' tokens, against a quota the
whole deployment shares. So the reranker reads less: only the first `documents` fused passages, each cut to
its best window around the query's words (at most `document_tokens`), fewer passages when the total would
pass `tokens`; identical windows go once; a pool of one passage is not sent (nothing to reorder); and the
scores are cached per (model, query, windows sent) in the `rerank` cache (settings: process memory, or
Redis when configured), so a repeated search costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches

from genapi import GenAPIError, get_client
from genapi.limiter import estimate_tokens
from search.terms import WORD_RE, key_term_stems, term_key
from search.terms import words as text_words
from search.types import Passage

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4  # the estimate the client's limiter and the provider's quota use (genapi.limiter)
QUERY_TOKENS_MAX = 128  # the query is billed once per passage: a pasted paragraph must not eat the budget
TITLE_TOKENS_MAX = 24
CONTEXT_WORDS = 6  # words kept before the first query word a window starts at
FRAGMENT_WORDS = 9  # words per fragment (a query word and four on each side)
WINDOW = "window"  # "window": one contiguous stretch; "fragments": several short ones (best_fragments)
# The reranked head's order: reciprocal-rank fusion of the reranker's order and the fused (first-stage)
# order, the latter weighted FUSED_WEIGHT (0: the reranker's order alone). The reranker reads windows, not
# whole passages, so the first stage's evidence (whole passages, corpus statistics) could keep a say. Off:
# with the stand-in's per-pair lexical reranker a weight of 0.5 cost 0.009 nDCG@10 on SciFact train at
# 25 x 160 (0.014 at 40 x 96, weight 1, with its older per-request BM25; BENCHMARKS.md); kept for measuring
# a provider's reranker (benchmarks/rerank_budget.py --fused-weights).
FUSED_WEIGHT = 0.0
BLEND_K = 20


@dataclass(frozen=True)
class RerankBudget:
    """How much the reranker may read for one search. 0 means no limit (`document_tokens`: whole passage)."""

    documents: int
    document_tokens: int
    tokens: int

    @classmethod
    def from_settings(cls) -> RerankBudget:
        return cls(
            documents=int(settings.RAG_RERANK_DOCUMENTS),
            document_tokens=int(settings.RAG_RERANK_DOCUMENT_TOKENS),
            tokens=int(settings.RAG_RERANK_TOKENS_MAX),
        )

    @classmethod
    def unbounded(cls, documents: int) -> RerankBudget:
        """Every one of `documents` candidates, whole (the behaviour before the budget; for comparisons)."""
        return cls(documents=int(documents), document_tokens=0, tokens=0)


@dataclass
class RerankOutcome:
    passages: list[Passage]
    reranked: bool
    tokens: int = 0  # billed by this call (0 when skipped or cached)
    cached: bool = False
    sent: int = 0  # passages the reranker scored


def query_terms(query: str) -> list[str]:
    """The query's content words, stemmed for matching in passages (search/terms.py: one tokeniser)."""
    return key_term_stems(query)


def _word_keys(text: str, words: list[tuple[int, int]]) -> list[str]:
    """The stemmed key of each whitespace-delimited word span (its first word), "" for punctuation."""
    keys = []
    for start, end in words:
        found = WORD_RE.findall(text[start:end])
        keys.append(term_key(found[0]) if found else "")
    return keys


def best_window(text: str, weights: dict[str, float], max_chars: int) -> str:
    """The stretch of `text` of at most `max_chars` holding the most query weight (each term counted once,
    plus a little per repeat), starting a few words before a query word; the start when none occurs."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    word_keys = _word_keys(text, words)
    starts = {0}
    for i, key in enumerate(word_keys):
        if key in weights:
            starts.add(max(0, i - CONTEXT_WORDS))
    best_score, best_span = -1.0, (0, 0)
    for i in sorted(starts):
        begin = words[i][0]
        seen: set[str] = set()
        score = 0.0
        j = i
        while j < len(words) and words[j][1] - begin <= max_chars:
            key = word_keys[j]
            if key in weights:
                score += weights[key] if key not in seen else 0.1 * weights[key]
                seen.add(key)
            j += 1
        if score > best_score:
            best_score, best_span = score, (begin, words[j - 1][1] if j > i else begin + max_chars)
    begin, end = best_span
    window = text[begin:end]
    return ("… " if begin > 0 else "") + window + (" …" if end < len(text) else "")


def best_fragments(text: str, weights: dict[str, float], max_chars: int) -> str:
    """Short fragments of `text` (FRAGMENT_WORDS words around a query word), chosen greedily to cover the
    most query weight not yet covered, in text order, joined by " … ", within `max_chars`: the passage's
    evidence for each query word at the price of a few words each (like a search engine's snippet)."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    keys = _word_keys(text, words)
    half = FRAGMENT_WORDS // 2
    spans = {(max(0, i - half), min(len(words), i + half + 1)) for i, k in enumerate(keys) if k in weights}
    chosen: list[tuple[int, int]] = []
    covered: set[str] = set()
    used = 0
    while spans:

        def gain(span: tuple[int, int]) -> float:
            return sum(weights[k] for k in set(keys[span[0] : span[1]]) - covered if k in weights)

        best = max(sorted(spans), key=gain)
        size = words[best[1] - 1][1] - words[best[0]][0] + 3
        if gain(best) <= 0 or used + size > max_chars:
            break
        chosen.append(best)
        covered.update(keys[best[0] : best[1]])
        used += size
        spans.discard(best)
    if not chosen:
        return best_window(text, weights, max_chars)
    merged: list[list[int]] = []
    for begin, end in sorted(chosen):
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    parts = [text[words[b][0] : words[e - 1][1]] for b, e in merged]
    return (
        ("… " if merged[0][0] > 0 else "") + " … ".join(parts) + (" …" if merged[-1][1] < len(words) else "")
    )


def term_weights(terms: list[str], passages: list[Passage]) -> dict[str, float]:
    """IDF of each query term over the candidate pool: a word every candidate holds picks no window."""
    n = len(passages)
    df = dict.fromkeys(terms, 0)
    for passage in passages:
        present = {term_key(w) for w in text_words(passage.text)}
        for term in terms:
            if term in present:
                df[term] += 1
    return {term: math.log(1 + (n + 1) / (df[term] + 0.5)) for term in terms}


def rerank_document(passage: Passage, weights: dict[str, float] | None = None, max_tokens: int = 0) -> str:
    """What the reranker reads: title and heading path (context for a bare passage), then the passage or,
    with `max_tokens`, its best window around the query's words, the whole within `max_tokens`."""
    head = passage.title
    if passage.heading_path:
        head = f"{passage.title} — {passage.heading_path}"
    if not max_tokens:
        return f"{head}\n{passage.text}"
    head = head[: TITLE_TOKENS_MAX * CHARS_PER_TOKEN]
    room = max(CHARS_PER_TOKEN * 8, max_tokens * CHARS_PER_TOKEN - len(head) - 5)
    cut = best_fragments if WINDOW == "fragments" else best_window
    return f"{head}\n{cut(passage.text, weights or {}, room)}"


def rerank_cost(query: str, documents: list[str]) -> int:
    """Tokens the provider bills: the query once per document plus the documents (genapi's estimate)."""
    return estimate_tokens(query) * len(documents) + sum(estimate_tokens(d) for d in documents)


def _cache_key(model: str, query: str, documents: list[str]) -> str:
    digest = hashlib.sha256(json.dumps([model, query, documents]).encode()).hexdigest()
    return f"rerank:v1:{digest}"


def passages_rerank(
    query: str, passages: list[Passage], *, top_k: int | None = None, budget: RerankBudget | None = None
) -> RerankOutcome:
    """Rerank the head of the fused list within `budget` (default RerankBudget.from_settings()); return the
    best `top_k` (settings.RAG_TOP_K) at or above settings.RAG_RERANK_THRESHOLD, best first. When `top_k` is
    larger than what was reranked, the rest of the fused list follows, in fused order (rerank_score None).

    The client has already retried; any GenAPIError here means the reranker is unavailable, so the fused
    order is kept (reranked=False) rather than failing the search.
    """
    top_k = int(top_k or settings.RAG_TOP_K)
    budget = budget or RerankBudget.from_settings()
    size = min(len(passages), budget.documents) if budget.documents else len(passages)
    if size <= 1:  # nothing to reorder: the call could not change the result's order
        return RerankOutcome(passages[:top_k], False)
    pool = passages[:size]
    if budget.tokens:
        query = query[: QUERY_TOKENS_MAX * CHARS_PER_TOKEN]
    weights = term_weights(query_terms(query), pool) if budget.document_tokens else {}
    documents = [rerank_document(p, weights, budget.document_tokens) for p in pool]
    if budget.tokens:
        while len(documents) > 2 and rerank_cost(query, list(dict.fromkeys(documents))) > budget.tokens:
            documents.pop()
        pool = pool[: len(documents)]
    unique = list(dict.fromkeys(documents))  # identical windows are scored once
    if len(unique) <= 1:  # one text for all: every score would be the same, the order could not change
        return RerankOutcome(passages[:top_k], False)
    model = settings.GENAPI_RERANK_MODEL
    key = _cache_key(model, query, unique)
    scores = _cache_get(key)
    tokens, cached = 0, scores is not None
    if scores is None:
        try:
            hits = get_client().rerank(query, unique, model=model, top_n=len(unique))
        except GenAPIError as exc:
            log.warning("rerank failed, keeping the fused order: %s", exc)
            return RerankOutcome(passages[:top_k], False)
        scores = [0.0] * len(unique)
        for hit in hits:
            scores[hit.index] = float(hit.relevance_score)
        tokens = rerank_cost(query, unique)
        _cache_set(key, scores)
    by_document = dict(zip(unique, scores, strict=True))
    threshold = float(settings.RAG_RERANK_THRESHOLD)
    order = sorted(range(len(pool)), key=lambda i: (-by_document[documents[i]], i))
    if FUSED_WEIGHT:
        blended = {i: 1.0 / (BLEND_K + r) for r, i in enumerate(order, start=1)}
        for i in range(len(pool)):
            blended[i] += FUSED_WEIGHT / (BLEND_K + i + 1)
        order = sorted(range(len(pool)), key=lambda i: (-blended[i], i))
    ranked: list[Passage] = []
    for i in order:
        score = by_document[documents[i]]
        if score < threshold:
            continue
        passage = pool[i]
        passage.rerank_score = passage.score = score
        ranked.append(passage)
    ranked = ranked[:top_k]
    if top_k > len(pool):
        ranked.extend(passages[len(pool) : len(pool) + top_k - len(ranked)])
    return RerankOutcome(ranked, True, tokens=tokens, cached=cached, sent=len(unique))


def _cache_get(key: str) -> list[float] | None:
    try:
        value = caches["rerank"].get(key)
    except Exception:  # noqa: BLE001 - a cache outage costs tokens, never the search
        log.warning("rerank cache unavailable", exc_info=True)
        return None
    return value if isinstance(value, list) else None


def _cache_set(key: str, scores: list[float]) -> None:
    try:
        caches["rerank"].set(key, scores, timeout=int(settings.RAG_RERANK_CACHE_SECONDS))
    except Exception:  # noqa: BLE001
        log.warning("rerank cache unavailable", exc_info=True)
