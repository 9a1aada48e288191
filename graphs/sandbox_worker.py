"""A sandbox worker: ``python -m graphs.sandbox_worker MEMORY_MIB`` (started by ``graphs.sandbox``).

It reads one JSON request a line on stdin, ``{"task": NAME, "args": {...}}``, runs the task
of that name from ``TASKS``, and writes one JSON answer a line on stdout:
``{"ok": true, "result": ...}``, or ``{"ok": false, "error": "memory"}`` when the job ran
out of memory, or ``{"ok": false, "error": "failed", "type": ..., "message": ...}`` when it
raised. ``"recycle": true`` asks the parent not to reuse it (after a MemoryError the
process may hold fragments of whatever the job built). The first line it writes says it
is ready, so starting it is never charged to a job's budget.

The memory limit is set before the tasks' modules are imported, on the whole address
space, so that it also bounds what C code (a str method, the JSON parser) allocates.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

# The handshake line is the parent's (graphs.workers): the template task imports it anyway.
from graphs.workers import READY


def _render_template(args: dict[str, Any]) -> str:
    from graphs import templating

    return templating.render(args["source"], args["values"])


def _test_expression(args: dict[str, Any]) -> bool:
    from graphs import expressions

    return expressions.holds(args["source"], args["values"])


def _echo(args: dict[str, Any]) -> Any:
    return args


# A task takes the request's args and returns JSON; what it raises is reported by name.
TASKS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "template": _render_template,
    "expression": _test_expression,
    "echo": _echo,
}


def main(argv: list[str]) -> int:
    _limit_memory(int(argv[1]) * 1024 * 1024)
    # Answers go out on a copy of stdout; stdout itself then points at stderr, so a stray
    # print cannot corrupt the protocol.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _exit_when_orphaned()
    from graphs import templating  # noqa: F401 - loaded now, not in the first job's budget

    out.write(READY)
    out.flush()
    for line in sys.stdin.buffer:
        answer = _answer(line)
        if _send(out, answer):
            return 0
    return 0


def _limit_memory(limit: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _exit_when_orphaned() -> None:
    # stdin closing ends the loop in main, but only between jobs: a job running for an
    # hour would outlive a parent that died without killing it.
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(0)

    threading.stack_size(256 * 1024)  # a thread's stack counts against the memory limit
    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


_OUT_OF_MEMORY = {"ok": False, "error": "memory", "recycle": True}


def _answer(line: bytes) -> dict[str, Any]:
    try:
        request = json.loads(line.decode("utf-8", "surrogatepass"))
        task = TASKS.get(request.get("task"))
        if task is None:
            return _failed("LookupError", f"no sandbox task {request.get('task')!r}")
        return {"ok": True, "result": task(request.get("args") or {})}
    except MemoryError:
        return _OUT_OF_MEMORY
    except RecursionError:
        return _failed("RecursionError", "nested or recursed too deeply")
    except Exception as exc:
        return _failed(type(exc).__name__, str(exc))


def _failed(kind: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": "failed", "type": kind, "message": message}


def _send(out: IO[bytes], answer: dict[str, Any]) -> bool:
    """Write the answer; True when this worker should exit (it ran out of memory)."""
    try:
        text = json.dumps(answer, ensure_ascii=False, separators=(",", ":"))
        data = text.encode("utf-8", "surrogatepass") + b"\n"
    except MemoryError:
        answer = _OUT_OF_MEMORY
        data = json.dumps(answer).encode() + b"\n"
    except (TypeError, ValueError) as exc:
        data = json.dumps(_failed("TypeError", f"the result is not JSON: {exc}")).encode() + b"\n"
    out.write(data)
    out.flush()
    return answer is _OUT_OF_MEMORY


if __name__ == "__main__":
    sys.exit(main(sys.argv))
