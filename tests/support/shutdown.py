"""Running a script of event loops in a fresh interpreter, to see how its loops end.

A loop's shutdown is only seen whole from outside: a hang (the run's timeout), a pipe or
transport left for the garbage collector (a ``ResourceWarning`` or "Event loop is closed"
on stderr, printed always), a process left behind.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def ends_cleanly(script: str) -> tuple[int, str, str]:
    """Run ``script``: its exit status, stderr and stdout (``(0, "", "ok\\n")`` when clean)."""
    done = subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stderr, done.stdout
