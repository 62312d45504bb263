"""Opt-in heap snapshots of a long-running process, for finding what grows (BENCHMARKS.md, issue 16).

With `CITABLE_TRACEMALLOC_DIR` set, a web worker starts tracemalloc and writes a snapshot there every
`CITABLE_TRACEMALLOC_SECONDS` (default 60) as `heap-<pid>-<n>.tracemalloc`; compare two with
`python -m operations.memory_trace FIRST LATER` (the allocation sites holding more memory in LATER, biggest
first). Off by default: tracing costs CPU and memory on every allocation.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path

ENV_DIR = "CITABLE_TRACEMALLOC_DIR"
ENV_SECONDS = "CITABLE_TRACEMALLOC_SECONDS"
FRAMES = 10


def start_from_env() -> bool:
    """Start tracing and the snapshot thread when `CITABLE_TRACEMALLOC_DIR` is set; True if started."""
    target = os.environ.get(ENV_DIR)
    if not target:
        return False
    every = float(os.environ.get(ENV_SECONDS, "60"))
    folder = Path(target)
    folder.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(FRAMES)

    def loop() -> None:
        for n in itertools.count():
            time.sleep(every)
            tracemalloc.take_snapshot().dump(str(folder / f"heap-{os.getpid()}-{n:03d}.tracemalloc"))

    threading.Thread(target=loop, name="tracemalloc-snapshots", daemon=True).start()
    return True


def compare(first: str, later: str, top: int = 25) -> list[str]:
    """Lines describing the allocation sites that grew between two snapshots, biggest growth first."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
    before = tracemalloc.Snapshot.load(first).filter_traces(ignore)
    after = tracemalloc.Snapshot.load(later).filter_traces(ignore)
    stats = after.compare_to(before, "traceback")
    grown = sum(s.size_diff for s in stats)
    lines = [f"live Python heap {grown / 2**20:+.2f} MiB between the two snapshots"]
    for stat in [s for s in stats if s.size_diff > 0][:top]:
        frames = " < ".join(f"{Path(f.filename).name}:{f.lineno}" for f in stat.traceback)
        lines.append(f"{stat.size_diff / 1024:9.1f} KiB {stat.count_diff:+8d} blocks  {frames}")
    return lines


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m operations.memory_trace FIRST.tracemalloc LATER.tracemalloc")
    print("\n".join(compare(sys.argv[1], sys.argv[2])))
