"""Reciprocal-rank fusion: merge ranked lists by rank alone, so incomparable scores (cosine, ts_rank_cd)
need no calibration."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

RRF_K = 60


def rrf_fuse(rankings: Sequence[Sequence[Hashable]], k: int = RRF_K) -> list[tuple[Hashable, float]]:
    """Fuse ranked id lists (best first) into `[(id, score)]`, best first.

    score(id) = sum over lists of 1 / (k + rank), rank starting at 1. Ties keep the order in which an id
    was first seen (earlier lists first), so the result is deterministic.
    """
    scores: dict[Hashable, float] = {}
    first_seen: dict[Hashable, tuple[int, int]] = {}
    for list_index, ranking in enumerate(rankings):
        seen_here: set[Hashable] = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen_here:  # a duplicate in one list counts once, at its best rank
                continue
            seen_here.add(item)
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
            first_seen.setdefault(item, (rank, list_index))
    return sorted(scores.items(), key=lambda kv: (-kv[1], first_seen[kv[0]]))
