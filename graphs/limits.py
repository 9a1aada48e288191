"""The limits of the sandboxes that run user-supplied work, as plain settings.

Apart from ``graphs.sandbox`` and ``graphs.codebox``, which run the processes, because
``Services`` holds these and every flow's check builds one: a process that only validates
a flow (``python -m graphs validate``) should not load asyncio and the worker machinery to
learn the default limits. Both modules export these names too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SandboxSettings:
    """Limits of the sandbox's workers (``graphs.settings`` reads them from the environment).

    ``workers``: processes per event loop, hence jobs at once; ``timeout_s``: wall-clock
    budget of one job; ``memory_mib``: address space of one worker; ``max_reply_bytes``:
    the longest answer a worker may send.
    """

    workers: int = 2
    timeout_s: float = 2.0
    memory_mib: int = 256
    max_reply_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class CodeSettings:
    """Limits of a ``code`` job (``graphs.settings`` reads them from the environment).

    ``workers``: jobs at once per event loop; ``spares``: workers kept started ahead;
    ``timeout_s``: wall-clock budget; ``cpu_s``: CPU seconds; ``memory_mib``: address
    space; ``scratch_mib``: size of the scratch directory; ``stdout_chars``: the most a
    job may print; ``max_reply_bytes``: the largest answer (outputs and stdout) it may send.
    """

    workers: int = 4
    spares: int = 1
    timeout_s: float = 10.0
    cpu_s: int = 5
    memory_mib: int = 256
    scratch_mib: int = 16
    stdout_chars: int = 1024 * 1024
    max_reply_bytes: int = 16 * 1024 * 1024
