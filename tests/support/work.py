"""Counting the work an action does, where a test would otherwise time it: a count does
not change with how busy the machine is.

``calls_made`` counts the calls Python code makes on this thread (to Python functions and
to C ones; what C code calls in turn goes uncounted); ``peak_bytes`` the
most memory Python held for the action at once, over what it held before.

>>> calls_made(lambda: len("one") + len("two") + abs(-3))
3
>>> peak_bytes(lambda: bytes(1_000_000)) >= 1_000_000
True
"""

from __future__ import annotations

import sys
import tracemalloc
from collections.abc import Callable


def calls_made(action: Callable[[], object]) -> int:
    """How many function calls ``action()`` made, nested ones included; its exception, if
    any, propagates (count with ``pytest.raises`` inside the action)."""
    count = 0

    def profile(frame, event: str, arg) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(previous)
    # The profiler hears action() itself and, on leaving, the call to setprofile.
    return count - 2


def peak_bytes(action: Callable[[], object]) -> int:
    """The most memory (bytes, as tracemalloc counts it) ``action()`` allocated at once."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        action()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        if not tracing:
            tracemalloc.stop()
    return peak - before
