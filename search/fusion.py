"""Reciprocal-rank fusion: merge ranked lists by rank alone, so incomparable scores (cosine, BM25) need no
calibration."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

# k and the legs' weights, tuned on SciFact's train split with the MiniLM engine (benchmarks/fusion_tune.py;
# BENCHMARKS.md, "Fusion tuned"): nDCG@10 is flat for k 1-5 and a full-text weight of 1.25-1.5 (0.727-0.731,
# against 0.711 for the textbook k 60 and equal weights); k 2 and 1.5 are the best neighbourhood inside that
# plateau rather than on the grid's edge. A small k trusts each leg's first ranks: both legs are precise at
# the top, and their tails add little.
RRF_K = 2
RRF_WEIGHT_VECTOR = 1.0
RRF_WEIGHT_FULLTEXT = 1.5


def rrf_fuse(
    rankings: Sequence[Sequence[Hashable]], k: float = RRF_K, weights: Sequence[float] | None = None
) -> list[tuple[Hashable, float]]:
    """Fuse ranked id lists (best first) into `[(id, score)]`, best first.

    score(id) = sum over lists of weight / (k + rank), rank starting at 1, weight 1 unless `weights` gives
    one per list. Ties keep the order in which an id was first seen (earlier lists first), so the result
    is deterministic.
    """
    if weights is not None and len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    scores: dict[Hashable, float] = {}
    first_seen: dict[Hashable, tuple[int, int]] = {}
    for list_index, ranking in enumerate(rankings):
        weight = 1.0 if weights is None else float(weights[list_index])
        seen_here: set[Hashable] = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen_here:  # a duplicate in one list counts once, at its best rank
                continue
            seen_here.add(item)
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
            first_seen.setdefault(item, (rank, list_index))
    return sorted(scores.items(), key=lambda kv: (-kv[1], first_seen[kv[0]]))
