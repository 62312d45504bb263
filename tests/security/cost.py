"""Cost growth between two input sizes, for tests that must catch super-linear (ReDoS-style) behaviour
without asserting a wall-clock time: the ratio of the best of a few runs at the large size to the best at
the small size. Linear work grows like the size ratio; quadratic like its square.

CPU time of this process, not wall time: on a loaded machine the wall clock also counts the time other
processes ran, which made the ratios swing by 5x."""

from __future__ import annotations

import time
from collections.abc import Callable


def _best_seconds(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best


def _seconds_per_run(run: Callable[[], object], repeats: int) -> float:
    # Repeat a fast run until one measurement takes ~20 ms, so timer resolution does not dominate.
    def runs(loops: int) -> Callable[[], object]:
        return lambda: [run() for _ in range(loops)]

    loops = 1
    while loops < 1 << 16 and _best_seconds(runs(loops), 1) < 0.02:
        loops *= 2
    return _best_seconds(runs(loops), repeats) / loops


def cost_growth(run: Callable[[int], object], small: int, large: int, *, repeats: int = 5) -> float:
    """How many times longer `run(large)` takes than `run(small)`."""
    small_cost = _seconds_per_run(lambda: run(small), repeats)
    large_cost = _seconds_per_run(lambda: run(large), repeats)
    return large_cost / max(small_cost, 1e-9)
