"""The Celery worker command `make run` starts, and the one benchmarks build from it."""

from __future__ import annotations

from rag_project.run import worker_command


def test_make_run_starts_its_worker_with_beat(monkeypatch):
    monkeypatch.setenv("CELERY_CONCURRENCY", "3")
    command = worker_command()
    assert command[1:6] == ["-m", "celery", "-A", "rag_project", "worker"]
    assert command[command.index("--concurrency") + 1] == "3"
    assert "--beat" in command and command[command.index("--schedule") + 1].endswith("celerybeat-schedule")
    assert not any(part.startswith(("--pool", "-Q", "-n")) for part in command)


def test_a_benchmark_worker_has_its_own_pool_queue_and_node_without_beat():
    command = worker_command(beat=False, concurrency=1, pool="prefork", queue="bench-q", name="w0@%h")
    assert "--beat" not in command and "--schedule" not in command
    assert command[command.index("--concurrency") + 1] == "1"
    assert "--pool=prefork" in command and command[command.index("-Q") + 1] == "bench-q"
    assert command[command.index("-n") + 1] == "w0@%h"
    assert {"--without-gossip", "--without-mingle", "--without-heartbeat"} <= set(command)
