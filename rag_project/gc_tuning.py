"""The garbage collector in a long-running web process: what start-up leaves is never scanned again.

About every 10 s under 8 concurrent searches, CPython's full collection walked the ~160,000 objects Django,
DRF and the project's modules leave after start-up, holding the GIL for 70-100 ms on a loaded 2-core
machine: every request thread of that worker stalled at once. Those objects live as long as the process, so
`gc.freeze()` moves them to a permanent generation the collector skips; a full collection then walks a few
thousand objects (~12 ms in the same test; BENCHMARKS.md, issue 14, "Session 9"). The young generations'
thresholds stay CPython's: a larger first threshold made each young collection 10-18 ms instead.
"""

from __future__ import annotations

import gc


def startup_objects_freeze() -> int:
    """Import every view module (the URLconf), collect once, freeze what survives. Returns how many objects
    are frozen."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - resolving the URLconf imports the views before the freeze
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
