"""Worker processes a loop can always start and always end: what both sandboxes share.

``graphs.sandbox`` (templates) and ``graphs.codebox`` (the ``code`` node) each keep a pool
of worker processes per event loop and speak their own protocol to them, under their own
limits. What they share is here: how a worker is started, watched and ended, and the
pool's life with its loop (``Fleet``), so that a loop that ends at any moment, a worker
still starting included, neither hangs nor leaves a process or a pipe behind.

Why not asyncio's subprocess support. On Python 3.11 a task cancelled while asyncio is
still connecting a new process's pipes (as ``asyncio.run`` cancels every task when a loop
ends, a spare being started among them) waits forever for a pipe it never connected: the
loop's shutdown hangs. Here a worker is started by ``subprocess.Popen`` on a thread (under
load a fork and exec held the loop for 0.1 s), so the process exists, and is ours to kill,
from the moment ``Popen`` returns; its pipes then become asyncio streams, and its exit is
seen through a pidfd. A start that was given up is killed and reaped once it has happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Mapping
from typing import Any

# The first line a worker writes: it has started and is ready for a job.
READY = b'{"ready": true}\n'
# Starting a worker is not part of any job's budget, but a machine can be slow to fork.
STARTUP_TIMEOUT_S = 60.0
# A killed worker is gone in milliseconds; this only bounds a shutdown if one is not.
END_TIMEOUT_S = 5.0


class SandboxError(Exception):
    """A job gave no result; the message says why, worded to follow what the job is
    ("template exceeded 2 s")."""


class SandboxTimeout(SandboxError):
    def __init__(self, seconds: float):
        super().__init__(f"exceeded {seconds:g} s")
        self.seconds = seconds


class SandboxMemoryError(SandboxError):
    def __init__(self, memory_mib: int):
        super().__init__(f"exceeded the {memory_mib} MiB memory limit")
        self.memory_mib = memory_mib


class SandboxCrashed(SandboxError):
    """The worker died during the job (a crash in C code, or the kernel killed it)."""


class SandboxJobFailed(SandboxError):
    """The job raised an exception: ``kind`` is its class name, the message its text."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class Worker:
    """One worker process: its stdin and stdout as asyncio streams, and ``gone``.

    ``gone`` is set once the process has exited AND the loop has read the end of its
    stdout. Those can be two moments: a code job's own process lives in another PID
    namespace and session, and dies with the namespace just after bwrap, only then closing
    its end of the pipe. Waiting for both leaves nothing for the garbage collector to
    close after the loop has closed ("Event loop is closed" from a transport's
    ``__del__``).
    """

    __slots__ = (
        "_exited",
        "_pidfd",
        "_reading",
        "_stdout_ended",
        "gone",
        "killed",
        "popen",
        "stdin",
        "stdout",
    )

    def __init__(self, popen: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop):
        self.popen = popen
        self.gone: asyncio.Future[None] = loop.create_future()
        self.killed = False
        self._exited = False
        self._stdout_ended = False
        self._reading = False
        self.stdin: asyncio.StreamWriter | None = None
        self.stdout: asyncio.StreamReader | None = None
        self._pidfd = os.pidfd_open(popen.pid)
        loop.add_reader(self._pidfd, self._on_exit, loop)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

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

    async def ask(self, request: bytes) -> bytes:
        """Send one request line; its answer line (empty when the worker ended)."""
        stdin, stdout = self.stdin, self.stdout
        assert stdin is not None and stdout is not None
        stdin.write(request)
        await stdin.drain()
        return await stdout.readline()

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
        self.killed = True
        if self.stdin is not None:
            self.stdin.close()
        elif self.popen.stdin is not None:
            self.popen.stdin.close()
        if self.popen.returncode is None:
            # Started in a session of its own: the group is the worker and all it started.
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
    def __init__(self, reader: asyncio.StreamReader, worker: Worker):
        super().__init__(reader)
        self.worker = worker

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # The transport has closed the pipe by now: the loop is done with it.
        self.worker.stdout_ended()


class Fleet(ABC):
    """The worker processes of one pool on one event loop, ended with the loop.

    A subclass says how a worker starts (``_popen``, which must start it in a session of
    its own with piped stdin and stdout), what it is called in errors (``what``), and
    speaks its own protocol to the workers ``_spawn`` returns. Every worker stays in
    ``_live`` until it has ended, whoever ends it, so ``close()`` ends whatever is left.
    """

    what = "sandbox worker"

    def __init__(self, max_reply_bytes: int):
        self.closed = False
        self._max_reply_bytes = max_reply_bytes
        self._live: set[Worker] = set()
        self._chores: set[asyncio.Task[None]] = set()
        self._keeper = asyncio.get_running_loop().create_task(self._keep())

    @abstractmethod
    def _popen(self) -> subprocess.Popen[bytes]:
        """Start one worker (in a session of its own, stdin and stdout piped)."""

    async def _spawn(self) -> Worker:
        """A started worker that has said it is ready."""
        if self.closed:
            raise SandboxError("could not run: the sandbox is shut down")
        starting = asyncio.get_running_loop().run_in_executor(None, self._popen)
        try:
            popen = await asyncio.shield(starting)
        except BaseException:
            # It starts regardless: whenever it has, it is killed and reaped.
            starting.add_done_callback(_discard)
            raise
        worker = Worker(popen, asyncio.get_running_loop())
        self._live.add(worker)
        try:
            if self.closed:  # closed while it started: close() may have missed it
                raise SandboxError("could not run: the sandbox is shut down")
            await worker.connect(self._max_reply_bytes)
            assert worker.stdout is not None
            async with asyncio.timeout(STARTUP_TIMEOUT_S):
                hello = await worker.stdout.readline()
            if hello != READY:
                raise SandboxError(f"could not run: a {self.what} failed to start")
        except BaseException:
            await self._end(worker)
            raise
        return worker

    def _chore(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` beside the jobs; ``close()`` waits for it."""
        chore = asyncio.get_running_loop().create_task(work)
        self._chores.add(chore)
        chore.add_done_callback(self._chores.discard)

    async def _end(self, worker: Worker) -> None:
        # Only once it has ended: cancelled before, it stays for close() to end.
        await worker.end()
        self._live.discard(worker)

    async def _keep(self) -> None:
        """Live as long as the loop runs; when it is cancelled at the end, end the workers."""
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            await self.close()

    async def close(self) -> None:
        """Kill every worker and wait until the loop is done with each."""
        if self.closed:
            return
        self.closed = True
        if self._keeper is not asyncio.current_task():
            self._keeper.cancel()
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


def encode(message: Mapping[str, Any]) -> bytes:
    """One request line: JSON, so what crosses to a worker is data, never code."""
    try:
        text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise SandboxError(f"values must be JSON to cross into the sandbox: {exc}") from None
    return text.encode("utf-8", "surrogatepass") + b"\n"
