"""Running user-supplied CPU work where it can be stopped: a pool of worker processes.

Why processes. The engine runs every node of every run on one event loop, and in the web
app that loop serves every user. A template is code the user wrote: a nested
``{% for %}`` over a long input, or a filter that builds a 400 MB string, runs for as long
and takes as much memory as it likes, and nothing on the loop can interrupt it,
``timeout_s`` included: a coroutine is only cancelled when it yields, and a render never
does. A thread cannot be killed either. A process can: it runs beside the loop, with an
address-space limit (``RLIMIT_AS``) set as it starts, so an allocation past the limit
fails inside it, and the parent kills it when it overruns its wall-clock budget.

How. Each event loop gets its own pool, started on first use, of up to
``SandboxSettings.workers`` long-lived processes (``python -m graphs.sandbox_worker``).
Starting Python costs about a tenth of a second, far more than most jobs, so workers are
kept between jobs and one that is killed is replaced in the background. A job is one JSON
line each way over the worker's stdin and stdout, so what crosses is data (node values
are JSON already), never code or pickles; the worker looks the task up by name in its own
table (``graphs.sandbox_worker.TASKS``), which is where a future task, such as a ``code``
node's, is added. The budget counts from when the job is handed to a worker, not while it
waits for one; cancelling the caller (a node's ``timeout_s``, a cancelled run) kills the
worker, because the only way to stop the job is to stop the process.

Workers are started, watched and ended by ``graphs.workers`` (shared with the ``code``
node's sandbox), and end with their loop: the pool keeps a task that ``asyncio.run`` (and
any runner that cancels what is left when it finishes) cancels, which kills them and waits
for them, a worker still starting included.
A worker whose parent dies sees its stdin close, or notices it has a new parent, and exits.

>>> import asyncio
>>> asyncio.run(run("echo", {"hello": "world"}))
{'hello': 'world'}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import sys
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graphs.limits import SandboxSettings
from graphs.workers import (
    Fleet,
    SandboxCrashed,
    SandboxError,
    SandboxJobFailed,
    SandboxMemoryError,
    SandboxTimeout,
    Worker,
    encode,
)

log = logging.getLogger(__name__)

# The directory holding the `graphs` package: the worker runs with it as its cwd.
_ROOT = str(Path(__file__).resolve().parents[1])


async def run(
    task: str,
    args: Mapping[str, Any],
    settings: SandboxSettings | None = None,
    *,
    timeout_s: float | None = None,
) -> Any:
    """Run ``task`` of ``graphs.sandbox_worker.TASKS`` on ``args`` in this loop's pool.

    ``args`` and the result are JSON. Raises a ``SandboxError``.
    """
    return await pool(settings or SandboxSettings()).run(task, args, timeout_s=timeout_s)


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[SandboxSettings, SandboxPool]]
_pools = weakref.WeakKeyDictionary()
# The web app's threads each run a loop of their own; the registry is shared.
_pools_lock = threading.Lock()


def pool(settings: SandboxSettings) -> SandboxPool:
    """The running loop's pool for ``settings``, made on first use."""
    loop = asyncio.get_running_loop()
    with _pools_lock:
        pools = _pools.setdefault(loop, {})
        found = pools.get(settings)
        if found is None or found.closed:
            found = pools[settings] = SandboxPool(settings)
        return found


class SandboxPool(Fleet):
    """The workers of one event loop; make it with ``pool()``, which keeps one per loop."""

    def __init__(self, settings: SandboxSettings):
        super().__init__(settings.max_reply_bytes)
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.workers)
        self._idle: list[Worker] = []

    async def run(
        self, task: str, args: Mapping[str, Any], *, timeout_s: float | None = None
    ) -> Any:
        budget = self.settings.timeout_s if timeout_s is None else timeout_s
        request = encode({"task": task, "args": args})
        async with self._slots:
            worker, waited = self._take_idle(), False
            if worker is not None:
                try:
                    return await self._job(worker, request, budget)
                except _DiedIdle:
                    # Killed while it waited for work (by an operator, the OOM killer):
                    # the job never ran, so it runs on a fresh worker.
                    waited = True
            if waited or worker is None:
                worker = await self._spawn()
            try:
                return await self._job(worker, request, budget)
            except _DiedIdle as died:
                raise SandboxCrashed(died.notice) from None

    def _take_idle(self) -> Worker | None:
        while self._idle:
            worker = self._idle.pop()
            if worker.returncode is None:
                return worker
            self._retire(worker)
        return None

    async def _job(self, worker: Worker, request: bytes, budget: float) -> Any:
        reusable = False
        began = asyncio.get_running_loop().time()
        try:
            try:
                async with asyncio.timeout(budget):
                    line = await worker.ask(request)
            except TimeoutError:
                raise SandboxTimeout(budget) from None
            except (ConnectionError, ValueError, asyncio.LimitOverrunError) as exc:
                if isinstance(exc, ConnectionError) and _instant(began):
                    raise _DiedIdle(f"broke its sandbox worker: {exc}") from None
                # An answer longer than max_reply_bytes.
                raise SandboxCrashed(f"broke its sandbox worker: {exc}") from None
            if not line:
                instant = _instant(began)
                notice = await self._death_notice(worker)
                raise _DiedIdle(notice) if instant else SandboxCrashed(notice)
            reply = json.loads(line.decode("utf-8", "surrogatepass"))
            reusable = not reply.get("recycle")
            return self._result(reply)
        finally:
            # Anything else (cancelled, timed out, crashed) leaves the worker in an
            # unknown state: mid-job, or holding memory the failed job left behind.
            if reusable and not self.closed and len(self._serving) <= self.settings.workers:
                self._idle.append(worker)
            else:
                self._retire(worker, replace=not reusable)

    def _result(self, reply: dict[str, Any]) -> Any:
        if reply.get("ok"):
            return reply.get("result")
        if reply.get("error") == "memory":
            raise SandboxMemoryError(self.settings.memory_mib)
        raise SandboxJobFailed(str(reply.get("type", "Error")), str(reply.get("message", "")))

    async def _death_notice(self, worker: Worker) -> str:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(worker.gone), 1.0)
        code = worker.returncode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        return (
            f"stopped its sandbox worker ({how}); it may have exceeded the "
            f"{self.settings.memory_mib} MiB memory limit"
        )

    def _popen(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 (our own argv, no shell)
            [
                sys.executable,
                "-s",  # no user site-packages: the worker sees the environment's packages only
                "-m",
                "graphs.sandbox_worker",
                str(self.settings.memory_mib),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=_ROOT,
            # Nothing of the server's environment (keys, database URLs) reaches user code.
            # One malloc arena: each extra one reserves address space the limit counts.
            env={"MALLOC_ARENA_MAX": "1"},
            # Its own session: a Ctrl-C at the terminal is for the parent, which stops
            # the workers itself.
            start_new_session=True,
        )

    @property
    def _serving(self) -> list[Worker]:
        """Started and not retired: idle, busy or starting."""
        return [worker for worker in self._live if not worker.killed]

    def _retire(self, worker: Worker, *, replace: bool = True) -> None:
        worker.kill()
        if self.closed:  # close() ends it
            return
        self._chore(self._reap(worker, replace))

    async def _reap(self, worker: Worker, replace: bool) -> None:
        await self._end(worker)
        # A replacement waits ready for the next job, so only the job that broke a worker
        # pays for starting one.
        if not replace or self.closed or len(self._serving) >= self.settings.workers:
            return
        try:
            spare = await self._spawn()
        except (SandboxError, OSError):
            if not self.closed:  # closing kills a worker still starting: nothing to say
                log.warning("could not start a spare sandbox worker", exc_info=True)
            return
        if self.closed:
            await self._end(spare)
        else:
            self._idle.append(spare)

    async def close(self) -> None:
        self._idle.clear()
        await super().close()

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        return [worker.pid for worker in self._serving]


class _DiedIdle(Exception):
    """The worker was found dead the moment it was given a job."""

    def __init__(self, notice: str):
        super().__init__(notice)
        self.notice = notice


def _instant(began: float) -> bool:
    # No job fails its worker this fast: it must have been dead before it was handed one.
    return asyncio.get_running_loop().time() - began < 0.05
