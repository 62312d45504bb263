"""The synthetic vectors of benchmarks/realmix.py: deterministic per passage number, unit length, close to
the real vectors they mix without copying them, and as spread out as the real ones."""

from __future__ import annotations

import numpy as np

from benchmarks.realmix import realmix_vectors


def _real(n: int = 300, dims: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((10, dims))
    owner = np.repeat(np.arange(n // 3), 3)  # three sentences per abstract
    vectors = centres[owner % 10] + 0.5 * rng.standard_normal((n, dims))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32), owner


def test_any_range_regenerates_the_same_vectors():
    real, owner = _real()
    whole = realmix_vectors(real, owner, 0, 25_000)
    assert np.allclose(realmix_vectors(real, owner, 12_345, 100), whole[12_345:12_445])
    assert np.allclose(np.linalg.norm(whole, axis=1), 1.0, atol=1e-5)


def test_vectors_stay_near_the_real_ones_without_copying_them():
    real, owner = _real()
    synthetic = realmix_vectors(real, owner, 0, 2_000)
    nearest = (synthetic @ real.T).max(axis=1)
    assert nearest.max() < 0.999  # no copies
    assert np.median(nearest) > 0.7  # but each is close to some real vector
    # no two synthetic vectors coincide
    sims = synthetic[:500] @ synthetic[:500].T
    np.fill_diagonal(sims, 0)
    assert sims.max() < 0.999
