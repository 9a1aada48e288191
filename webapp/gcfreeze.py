"""What the server made while starting is kept out of the garbage collector's full passes.

A full (generation 2) collection walks every object the process tracks, and holds the
GIL, so the event loop, while it does: some 290,000 objects once Django, the apps and the
model SDK are loaded, 130 ms of CPU on an idle machine, 630 ms of wall time once under
bench/load.py's burst on the loaded 2-core machine (bench/_loopwatch.py). Almost all of
them live as long as the process (modules, classes, functions, settings), so walking them
finds nothing. ``gc.freeze`` moves the objects alive now to a permanent generation that
collections skip; objects made later are collected as before.
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()


def freeze_startup() -> None:
    """Collect what start-up left as garbage, then freeze everything still alive. Called
    once the server is loaded and again once the model SDK is (webapp.execution.warm)."""
    with _lock:
        gc.collect()
        gc.freeze()
