"""The process a ``code`` node's job runs in, inside the bubblewrap sandbox (``graphs.codebox``).

Standard library only: the sandbox mounts the interpreter and its standard library, not
the project or its packages. The operating system does the isolating (namespaces, a
seccomp filter, rlimits); nothing here filters Python. This script only sets the limits
that must be set from inside, frames the job, and reports what happened.

Protocol: ``python -I -S worker.py LIMITS_JSON``; it writes ``{"ready": true}`` once
started, reads ONE job, ``{"code": ..., "inputs": {...}, "outputs": [...]}``, writes ONE
answer line and exits. One job per process: nothing a job leaves behind (threads,
patched modules, files) can reach the next user's job.
"""

from __future__ import annotations

import io
import json
import linecache
import os
import resource
import sys
import traceback
from typing import Any

READY = b'{"ready": true}\n'


class OutputLimitExceeded(Exception):
    """stdout grew past its cap: raised inside the ``print`` that crossed it."""


class _CappedText(io.TextIOBase):
    """A stdout that keeps at most ``cap`` characters and raises past them."""

    def __init__(self, cap: int):
        self.cap = cap
        self.parts: list[str] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.size += len(text)
        if self.size > self.cap:
            raise OutputLimitExceeded(f"printed more than {self.cap} characters")
        self.parts.append(text)
        return len(text)

    def text(self) -> str:
        return "".join(self.parts)


def _limit(which: int, value: int) -> None:
    # Soft and hard alike: the job cannot raise a hard limit back.
    resource.setrlimit(which, (value, value))


def main(argv: list[str]) -> int:
    limits = json.loads(argv[1])
    # Answers go out on a copy of stdout, then fds 1 and 2 point at /dev/null: a job that
    # writes to them directly reaches nobody (print goes to the capped buffer instead).
    out = os.fdopen(os.dup(1), "wb")
    null = os.open("/dev/null", os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    _limit(resource.RLIMIT_AS, limits["memory_mib"] * 1024 * 1024)
    # CPU seconds: past the soft limit the kernel sends SIGXCPU, which ends the process.
    # The hard limit a second later: at the soft one the kernel sends SIGXCPU (which says
    # why the job ended), at the hard one SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 1))
    _limit(resource.RLIMIT_FSIZE, limits["file_bytes"])
    _limit(resource.RLIMIT_CORE, 0)
    out.write(READY)
    out.flush()
    job = json.loads(sys.stdin.buffer.readline())
    answer = _run(job, limits["stdout_chars"])
    try:
        line = json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "surrogatepass"
        )
    except (TypeError, ValueError) as exc:
        line = _failure(f"main returned a non-JSON value: {exc}")
    except MemoryError:
        line = b'{"ok": false, "error": "memory"}'
    if len(line) >= limits["reply_bytes"]:
        line = _failure(f"main's outputs and stdout take more than {limits['reply_bytes']} bytes")
    out.write(line + b"\n")
    out.flush()
    return 0


def _failure(message: str) -> bytes:
    return json.dumps({"ok": False, "error": "failed", "message": message}).encode()


def _run(job: dict[str, Any], stdout_chars: int) -> dict[str, Any]:
    stdout = _CappedText(stdout_chars)
    sys.stdout = sys.stderr = stdout
    try:
        scope: dict[str, Any] = {"__name__": "__main__"}
        # Registered so that the traceback quotes the user's lines.
        source = job["code"]
        linecache.cache["<code>"] = (len(source), None, source.splitlines(True), "<code>")
        # Running the user's code is this process's purpose; the kernel confines it.
        exec(compile(source, "<code>", "exec"), scope)  # noqa: S102
        main = scope.get("main")
        if not callable(main):
            raise NameError("the code must define a function main(...)")
        result = main(**job["inputs"])
        if not isinstance(result, dict):
            raise TypeError(f"main must return a dict of outputs, got {type(result).__name__}")
        missing = [name for name in job["outputs"] if name not in result]
        if missing:
            raise KeyError(f"main's result lacks the declared outputs {missing}")
        outputs = {name: result[name] for name in job["outputs"]}
        return {"ok": True, "outputs": outputs, "stdout": stdout.text()}
    except MemoryError:
        stdout.parts = stdout.parts[-100:]
        return {"ok": False, "error": "memory", "stdout": stdout.text()}
    except BaseException as exc:  # a job's every failure is reported, SystemExit too
        stdout.parts, stdout.size = stdout.parts[-100:], 0
        return {
            "ok": False,
            "error": "failed",
            "type": type(exc).__name__,
            "message": _traceback(exc),
            "stdout": stdout.text()[-stdout_chars:],
        }


def _traceback(exc: BaseException) -> str:
    # Only the user's frames: the worker's own are noise to them.
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [frame for frame in frames if frame.filename == "<code>"]
    lines = traceback.format_list(mine) + traceback.format_exception_only(type(exc), exc)
    return ("Traceback (most recent call last):\n" + "".join(lines))[-20_000:]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
