"""The web process freezes what start-up leaves, so full collections stop walking it."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_loading_the_wsgi_application_freezes_the_startup_objects():
    # A child process: the test process's own collector is left as it is.
    script = (
        "import gc\n"
        "import rag_project.wsgi\n"
        "frozen = gc.get_freeze_count()\n"
        "print(frozen, len(gc.get_objects()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    frozen, tracked = (int(n) for n in result.stdout.split()[-2:])
    # Django, DRF and every view module: tens of thousands of objects, and the collector tracks few beside.
    assert frozen > 20_000
    assert tracked < frozen / 10


def test_the_freeze_reports_how_many_objects_it_froze():
    from rag_project.gc_tuning import startup_objects_freeze

    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        # Other threads of the test process allocate too: the count only has to be the freeze's.
        assert startup_objects_freeze() > 20_000
    finally:
        gc.unfreeze()
