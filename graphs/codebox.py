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

How. As ``graphs.sandbox`` does for templates, each event loop gets a pool per settings;
but a worker runs ONE job and is then killed, so nothing a job leaves behind reaches the
next (another user's). Start-up (about a tenth of a second) is paid ahead: ``spares``
workers wait ready, and each job taken starts a replacement in the background.

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
from graphs.sandbox import (
    SandboxCrashed,
    SandboxError,
    SandboxJobFailed,
    SandboxMemoryError,
    SandboxTimeout,
)

READY = b'{"ready": true}\n'
_WORKER = Path(__file__).with_name("codebox_worker.py")
STARTUP_TIMEOUT_S = 60.0
# A killed sandbox is gone in milliseconds; this only bounds a shutdown if one is not.
END_TIMEOUT_S = 5.0


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


class _Worker:
    """One sandbox process: its stdin and stdout as asyncio streams, and ``gone``.

    Started by ``subprocess.Popen``, not asyncio's subprocess support: on Python 3.11 a
    task cancelled while asyncio is still connecting a new process's pipes (as
    ``asyncio.run`` cancels every task when a loop ends, a spare being started among
    them) waits forever for a pipe it never connected. Here the process exists, and is
    ours to kill, from the moment ``Popen`` returns; its exit is seen through a pidfd.

    ``gone`` is set once the process has exited AND the loop has read the end of its
    stdout. Those are two moments: the job's own process lives in another PID namespace
    and session, and dies with the namespace just after bwrap, only then closing its end
    of the pipe. Waiting for both leaves nothing for the garbage collector to close after
    the loop has closed ("Event loop is closed" from a transport's ``__del__``).
    """

    __slots__ = (
        "_exited",
        "_pidfd",
        "_reading",
        "_stdout_ended",
        "gone",
        "popen",
        "stdin",
        "stdout",
    )

    def __init__(self, popen: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop):
        self.popen = popen
        self.gone: asyncio.Future[None] = loop.create_future()
        self._exited = False
        self._stdout_ended = False
        self._reading = False
        self.stdin: asyncio.StreamWriter | None = None
        self.stdout: asyncio.StreamReader | None = None
        self._pidfd = os.pidfd_open(popen.pid)
        loop.add_reader(self._pidfd, self._on_exit, loop)

    async def connect(self, limit: int) -> None:
        """Its pipes as streams (a cancellation here leaves them closed, the process ours)."""
        loop = asyncio.get_running_loop()
        assert self.popen.stdin is not None and self.popen.stdout is not None
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        # No await between these checks and the transports taking the pipes: end() may
        # close them while this waits.
        if self.popen.stdout.closed:
            raise SandboxError("could not run: the sandbox is shut down")
        self._reading = True  # from here the loop's transport owns stdout
        await loop.connect_read_pipe(lambda: _StdoutProtocol(reader, self), self.popen.stdout)
        self.stdout = reader
        if self.popen.stdin.closed:
            raise SandboxError("could not run: the sandbox is shut down")
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(loop), self.popen.stdin
        )
        self.stdin = asyncio.StreamWriter(transport, protocol, None, loop)

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def _on_exit(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self.popen.wait()  # it has exited: this only reaps it
        self._exited = True
        self._settle()

    def stdout_ended(self) -> None:
        self._stdout_ended = True
        self._settle()

    def _settle(self) -> None:
        if self._exited and self._stdout_ended and not self.gone.done():
            self.gone.set_result(None)

    def kill(self) -> None:
        if self.stdin is not None:
            self.stdin.close()
        elif self.popen.stdin is not None:
            self.popen.stdin.close()
        if self.popen.returncode is None:
            # Its own session: the group is bwrap and everything inside.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)

    async def end(self) -> None:
        """Kill it and wait until the loop is done with it (``gone``)."""
        self.kill()
        if not self._reading and self.popen.stdout is not None:
            # Never connected: no transport of the loop holds it.
            self.popen.stdout.close()
            self.stdout_ended()
        # Shielded: a caller cancelled while waiting leaves ``gone`` to whoever waits next.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.gone), END_TIMEOUT_S)


class _StdoutProtocol(asyncio.StreamReaderProtocol):
    def __init__(self, reader: asyncio.StreamReader, worker: _Worker):
        super().__init__(reader)
        self.worker = worker

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # The transport has closed the pipe by now: the loop is done with it.
        self.worker.stdout_ended()


class CodePool:
    """The code workers of one event loop; make it with ``pool()``."""

    def __init__(self, settings: CodeSettings):
        self.settings = settings
        self.closed = False
        self._slots = asyncio.Semaphore(settings.workers)
        self._spares: list[_Worker] = []
        self._live: set[_Worker] = set()
        self._chores: set[asyncio.Task[None]] = set()
        self._keeper = asyncio.get_running_loop().create_task(self._keep())

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
        request = _encode({"code": code, "inputs": inputs, "outputs": outputs})
        async with self._slots:
            worker = self._take_spare() or await self._spawn()
            self._top_up()
            try:
                return await self._job(worker, request, budget)
            finally:
                self._retire(worker)

    def _take_spare(self) -> _Worker | None:
        while self._spares:
            worker = self._spares.pop()
            if worker.returncode is None:
                return worker
            self._retire(worker)
        return None

    async def _job(self, worker: _Worker, request: bytes, budget: float) -> CodeResult:
        stdin, stdout = worker.stdin, worker.stdout
        assert stdin is not None and stdout is not None
        try:
            async with asyncio.timeout(budget):
                stdin.write(request)
                await stdin.drain()
                line = await stdout.readline()
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

    async def _death_notice(self, worker: _Worker) -> str:
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

    async def _spawn(self) -> _Worker:
        if self.closed:
            raise SandboxError("could not run: the sandbox is shut down")
        # Forked on a thread: under load a fork and exec can hold a loop for 0.1 s.
        starting = asyncio.get_running_loop().run_in_executor(None, self._popen)
        try:
            popen = await asyncio.shield(starting)
        except BaseException:
            # It starts regardless: whenever it has, it is killed and reaped.
            starting.add_done_callback(_discard)
            raise
        worker = _Worker(popen, asyncio.get_running_loop())
        # In _live until it has ended, whoever ends it: close() ends whatever is left.
        self._live.add(worker)
        try:
            if self.closed:  # closed while it started: close() may have missed it
                raise SandboxError("could not run: the sandbox is shut down")
            await worker.connect(self.settings.max_reply_bytes)
            assert worker.stdout is not None
            async with asyncio.timeout(STARTUP_TIMEOUT_S):
                hello = await worker.stdout.readline()
            if hello != READY:
                raise SandboxError("could not run: a code sandbox failed to start")
        except BaseException:
            await self._end(worker)
            raise
        return worker

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
        chore = asyncio.get_running_loop().create_task(self._add_spare())
        self._chores.add(chore)
        chore.add_done_callback(self._chores.discard)

    async def _add_spare(self) -> None:
        try:
            worker = await self._spawn()
        except (SandboxError, OSError):
            return  # the next job starts its own, and reports why if it cannot
        if self.closed:
            await self._end(worker)
        else:
            self._spares.append(worker)

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        if self.closed:  # close() ends it
            return
        chore = asyncio.get_running_loop().create_task(self._end(worker))
        self._chores.add(chore)
        chore.add_done_callback(self._chores.discard)

    async def _end(self, worker: _Worker) -> None:
        # Only once it has ended: cancelled before, it stays for close() to end.
        await worker.end()
        self._live.discard(worker)

    async def _keep(self) -> None:
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            await self.close()

    async def warm(self) -> None:
        """Start the spares now rather than at the first job."""
        while not self.closed and len(self._spares) < self.settings.spares:
            self._spares.append(await self._spawn())

    async def close(self) -> None:
        """Kill every worker and wait until the loop is done with each."""
        if self.closed:
            return
        self.closed = True
        if self._keeper is not asyncio.current_task():
            self._keeper.cancel()
        self._spares.clear()
        for worker in list(self._live):
            worker.kill()
        # The chores are not cancelled: a spare being started sees the pool closed and
        # ends itself, a worker being ended is waited for. (Cancelling them would cut
        # their clean-up short when asyncio.run has cancelled them once already.)
        await asyncio.gather(*list(self._chores), return_exceptions=True)
        # What a cancelled chore or job left: _end only lets go of a worker it ended.
        while self._live:
            await asyncio.gather(*(self._end(worker) for worker in list(self._live)))


def _discard(starting: asyncio.Future[subprocess.Popen[bytes]]) -> None:
    """Kill and reap a process whose start was given up (its start was cancelled)."""
    if starting.cancelled() or starting.exception() is not None:
        return
    popen = starting.result()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signal.SIGKILL)
    popen.communicate()  # closes its pipes; SIGKILLed, it is gone in a moment


def _temp_fd() -> int:
    fd, path = tempfile.mkstemp()
    os.unlink(path)
    return fd


def _encode(message: dict[str, Any]) -> bytes:
    try:
        text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise SandboxError(f"values must be JSON to cross into the sandbox: {exc}") from None
    return text.encode("utf-8", "surrogatepass") + b"\n"
