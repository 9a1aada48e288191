"""Running a ``code`` node's Python in an operating-system sandbox: bubblewrap, seccomp, rlimits.

Why the OS. Python cannot be made safe by filtering Python (every restricted-Python scheme
has been escaped through introspection), so the job runs in a process the kernel confines:

- ``bwrap --unshare-all``: its own user, PID, network, IPC, UTS and cgroup namespaces.
  The network namespace holds only a loopback interface of its own, so nothing outside
  (127.0.0.1 of the server included) is reachable; the PID namespace shows no other
  process. The file system is built empty: read-only the interpreter, its standard
  library (``_ctypes`` replaced by an empty file) and the C libraries in ``/usr/lib``; a
  ``tmpfs`` scratch directory of bounded size as the working directory; ``/proc`` of its
  own and a minimal ``/dev``. No ``/etc``, no project, no database, no shells.
- A seccomp filter (``graphs.seccomp``) refuses new processes, sockets and the calls
  that reach other processes or change the sandbox.
- rlimits, set by the worker on itself before the job, soft and hard: address space,
  CPU seconds, file size. The parent kills the whole process group at the wall-clock
  budget; ``--die-with-parent`` ends the job if the server dies.

How. As ``graphs.sandbox`` does for templates, each event loop gets a pool per settings,
its workers started and ended by ``graphs.workers``; but a worker runs ONE job and is then
killed, so nothing a job leaves behind reaches the next (another user's). Start-up (about a
tenth of a second) is paid ahead: ``spares`` workers wait ready, and each job taken starts a
replacement in the background.

Without bubblewrap, or on a machine the filter does not know, the node refuses to run
(``SandboxError``): it never falls back to running unconfined.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphs import seccomp
from graphs.limits import CodeSettings
from graphs.sandbox import (
    SandboxCrashed,
    SandboxError,
    SandboxJobFailed,
    SandboxMemoryError,
    SandboxTimeout,
)
from graphs.workers import Fleet, Worker, encode

_WORKER = Path(__file__).with_name("codebox_worker.py")


@dataclass(frozen=True)
class CodeResult:
    outputs: dict[str, Any]
    stdout: str


class CodeFailed(SandboxJobFailed):
    """The job raised: ``message`` is its traceback, ``stdout`` what it printed first."""

    def __init__(self, kind: str, message: str, stdout: str):
        super().__init__(kind, message)
        self.stdout = stdout


def available() -> str | None:
    """None when the sandbox can run here, else why not (for the node's error)."""
    if not seccomp.supported():
        return "the code sandbox's seccomp filter is written for x86-64 Linux"
    if shutil.which("bwrap") is None:
        return "the code sandbox needs bubblewrap (Debian: apt-get install bubblewrap)"
    return None


async def run(
    code: str,
    inputs: dict[str, Any],
    outputs: list[str],
    settings: CodeSettings | None = None,
    *,
    timeout_s: float | None = None,
) -> CodeResult:
    """Run ``main(**inputs)`` of ``code`` in the sandbox; its dict's ``outputs`` come back.

    Raises a ``SandboxError``: ``CodeFailed`` (with the traceback) when the code raised.
    """
    return await pool(settings or CodeSettings()).run(code, inputs, outputs, timeout_s=timeout_s)


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[CodeSettings, CodePool]]
_pools = weakref.WeakKeyDictionary()
_pools_lock = threading.Lock()


def pool(settings: CodeSettings) -> CodePool:
    """The running loop's pool for ``settings``, made on first use."""
    loop = asyncio.get_running_loop()
    with _pools_lock:
        pools = _pools.setdefault(loop, {})
        found = pools.get(settings)
        if found is None or found.closed:
            found = pools[settings] = CodePool(settings)
        return found


def command(settings: CodeSettings, seccomp_fd: int) -> list[str]:
    """The bwrap command line of one worker (its filter read from ``seccomp_fd``)."""
    python = os.path.realpath(sys.executable)
    prefix = os.path.realpath(sys.base_prefix)
    # The base interpreter's library (a virtual environment's paths point into the venv).
    dynload = Path(sysconfig.get_path("platstdlib", vars={"platbase": prefix})) / "lib-dynload"
    limits = {
        "memory_mib": settings.memory_mib,
        "cpu_s": settings.cpu_s,
        "file_bytes": settings.scratch_mib * 1024 * 1024,
        "stdout_chars": settings.stdout_chars,
        "reply_bytes": settings.max_reply_bytes,
    }
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--clearenv"]
    argv += ["--ro-bind", "/usr/lib", "/usr/lib", "--ro-bind-try", "/usr/lib64", "/usr/lib64"]
    argv += ["--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64"]
    argv += ["--ro-bind", prefix, prefix, "--ro-bind", python, python]
    # ctypes would let a job call any C function: its module is an empty file in there.
    for ctypes_module in dynload.glob("_ctypes*.so"):
        argv += ["--ro-bind", "/dev/null", str(ctypes_module)]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--size", str(settings.scratch_mib * 1024 * 1024), "--tmpfs", "/scratch"]
    argv += ["--chdir", "/scratch", "--ro-bind", str(_WORKER), "/sandbox/worker.py"]
    argv += ["--seccomp", str(seccomp_fd)]
    argv += [python, "-I", "-S", "-X", "utf8", "/sandbox/worker.py", json.dumps(limits)]
    return argv


class CodePool(Fleet):
    """The code workers of one event loop; make it with ``pool()``.

    Started, watched and ended as ``graphs.workers`` says; a worker runs one job.
    """

    what = "code sandbox"

    def __init__(self, settings: CodeSettings):
        super().__init__(settings.max_reply_bytes)
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.workers)
        self._spares: list[Worker] = []

    async def run(
        self,
        code: str,
        inputs: dict[str, Any],
        outputs: list[str],
        *,
        timeout_s: float | None = None,
    ) -> CodeResult:
        why_not = available()
        if why_not:
            raise SandboxError(f"cannot run: {why_not}")
        budget = self.settings.timeout_s if timeout_s is None else timeout_s
        request = encode({"code": code, "inputs": inputs, "outputs": outputs})
        async with self._slots:
            worker = self._take_spare() or await self._spawn()
            self._top_up()
            try:
                return await self._job(worker, request, budget)
            finally:
                self._retire(worker)

    def _take_spare(self) -> Worker | None:
        while self._spares:
            worker = self._spares.pop()
            if worker.returncode is None:
                return worker
            self._retire(worker)
        return None

    async def _job(self, worker: Worker, request: bytes, budget: float) -> CodeResult:
        try:
            async with asyncio.timeout(budget):
                line = await worker.ask(request)
        except TimeoutError:
            raise SandboxTimeout(budget) from None
        except (ValueError, asyncio.LimitOverrunError):  # the worker checks; this is a backstop
            raise SandboxError(
                f"answered more than {self.settings.max_reply_bytes} bytes"
            ) from None
        except ConnectionError as exc:
            raise SandboxCrashed(f"broke its sandbox: {exc}") from None
        if not line:
            raise SandboxCrashed(await self._death_notice(worker))
        reply = json.loads(line.decode("utf-8", "surrogatepass"))
        if reply.get("ok"):
            return CodeResult(dict(reply.get("outputs") or {}), str(reply.get("stdout", "")))
        if reply.get("error") == "memory":
            raise SandboxMemoryError(self.settings.memory_mib)
        raise CodeFailed(
            str(reply.get("type", "Error")),
            str(reply.get("message", "")),
            str(reply.get("stdout", "")),
        )

    async def _death_notice(self, worker: Worker) -> str:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(worker.gone), 2.0)
        code = worker.returncode
        # bwrap passes on its child's end: a signal shows as 128 + its number.
        signum = -code if code is not None and code < 0 else (code or 0) - 128
        if signum == signal.SIGXCPU:
            return f"exceeded {self.settings.cpu_s} s of CPU time"
        if signum == signal.SIGSYS:
            return "was stopped by the sandbox for a forbidden system call"
        return (
            f"stopped its sandbox (exit status {code}); it may have exceeded the "
            f"{self.settings.memory_mib} MiB memory limit"
        )

    def _popen(self) -> subprocess.Popen[bytes]:
        # The filter crosses on a pipe-like file bwrap reads once: a memory file.
        fd = os.memfd_create("seccomp") if hasattr(os, "memfd_create") else _temp_fd()
        try:
            os.write(fd, seccomp.filter_program())
            os.lseek(fd, 0, os.SEEK_SET)
            return subprocess.Popen(  # noqa: S603 (our own argv, no shell)
                command(self.settings, fd),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                pass_fds=(fd,),
                start_new_session=True,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
        finally:
            os.close(fd)

    def _top_up(self) -> None:
        if self.closed or len(self._spares) >= self.settings.spares:
            return
        self._chore(self._add_spare())

    async def _add_spare(self) -> None:
        try:
            worker = await self._spawn()
        except (SandboxError, OSError):
            return  # the next job starts its own, and reports why if it cannot
        if self.closed:
            await self._end(worker)
        else:
            self._spares.append(worker)

    def _retire(self, worker: Worker) -> None:
        worker.kill()
        if self.closed:  # close() ends it
            return
        self._chore(self._end(worker))

    async def warm(self) -> None:
        """Start the spares now rather than at the first job."""
        while not self.closed and len(self._spares) < self.settings.spares:
            self._spares.append(await self._spawn())

    async def close(self) -> None:
        self._spares.clear()
        await super().close()


def _temp_fd() -> int:
    fd, path = tempfile.mkstemp()
    os.unlink(path)
    return fd
