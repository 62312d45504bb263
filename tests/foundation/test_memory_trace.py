"""The opt-in heap snapshots: off without the setting; two snapshots compared name the line that grew."""

from __future__ import annotations

import tracemalloc

from operations.memory_trace import compare, start_from_env


def test_off_without_the_setting(monkeypatch):
    monkeypatch.delenv("CITABLE_TRACEMALLOC_DIR", raising=False)
    assert start_from_env() is False
    assert not tracemalloc.is_tracing()


def test_compare_names_the_growing_line(tmp_path):
    kept: list[bytes] = []
    tracemalloc.start(5)
    try:
        tracemalloc.take_snapshot().dump(str(tmp_path / "a.tracemalloc"))
        for _ in range(200):
            kept.append(bytes(4096))  # the growing line: 200 x 4 KiB kept alive
        tracemalloc.take_snapshot().dump(str(tmp_path / "b.tracemalloc"))
    finally:
        tracemalloc.stop()
    lines = compare(str(tmp_path / "a.tracemalloc"), str(tmp_path / "b.tracemalloc"))
    assert len(kept) == 200
    assert lines[1].split()[0] and float(lines[1].split()[0]) >= 800  # KiB, the biggest site first
    assert "test_memory_trace.py:22" in lines[1]
