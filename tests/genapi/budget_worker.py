"""A separate process for tests/genapi/test_shared_budget.py: says it is ready, waits for the common "go"
(so every process starts sending at once), then sends embeddings calls from a few threads through the
process-wide client (its budget from the environment) and prints what happened as one JSON line."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path


def main() -> None:
    folder, name = Path(sys.argv[1]), sys.argv[2]
    threads, calls, chars = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    from genapi import GenAPIError, get_client

    client = get_client()
    client._state()  # the connection pool and the budget store, before the start
    ok, errors = [0], []
    lock = threading.Lock()

    def run(n: int) -> None:
        for i in range(calls):
            try:
                client.embeddings_create("all-minilm-l6-v2", [f"{n}-{i} " + "x" * chars])
                with lock:
                    ok[0] += 1
            except GenAPIError as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")

    (folder / f"ready-{name}").touch()
    while not (folder / "go").exists():
        time.sleep(0.01)
    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(json.dumps({"ok": ok[0], "errors": errors}))


if __name__ == "__main__":
    main()
