"""Daphne with a watch on its event loop: which callbacks hold it, and where they spend it.

A server script for ``LiveStack(server_script=...)`` (``bench/load.py --loopwatch``). Every
callback the loop runs (``asyncio.Handle._run``: task steps, socket reads, timers) is timed,
wall and the loop thread's own CPU, and totalled by what it runs. A watchdog thread looks
at the loop every few milliseconds; while one callback has held it longer than
``BLOCKED_MS`` it samples the loop thread's stack, so a long stretch says where it was
spent. The CPU figure tells a callback that computes from one that waited for the GIL
(another thread held it) or for a lock.

On SIGUSR2 the findings go, as JSON, to ``report_path(pid)``; ``summary`` prints them.
Diagnostics only: nothing in the app imports this.
"""

from __future__ import annotations

import asyncio.events
import collections
import gc
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BLOCKED_MS = 20.0
SAMPLE_EVERY_S = 0.004
ROOT = str(Path(__file__).resolve().parent.parent)

_current: list[Any] = [0.0, None]  # start of the running callback (perf_counter), its handle
_totals: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0, 0.0])
_stretches: list[dict[str, Any]] = []
_samples: dict[int, list[tuple[str, ...]]] = collections.defaultdict(list)
_loop_thread = threading.main_thread().ident
_original_run = asyncio.events.Handle._run


def _name(handle: asyncio.events.Handle) -> str:
    callback = handle._callback
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):  # a task's step: name it by its coroutine
        coro = owner.get_coro()
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        if code is not None:
            return f"task {code.co_qualname} ({_short(code.co_filename)})"
        return f"task {type(coro).__name__}"
    name = getattr(callback, "__qualname__", None) or type(callback).__name__
    module = getattr(callback, "__module__", "") or ""
    return f"{module}.{name}"


def _short(filename: str) -> str:
    if filename.startswith(ROOT):
        filename = filename[len(ROOT) + 1 :]
    return filename.replace(".venv/lib/python3.11/site-packages/", "")


def _timed_run(self: asyncio.events.Handle) -> None:
    started = time.perf_counter()
    cpu = time.thread_time()
    _current[0], _current[1] = started, self
    try:
        _original_run(self)
    finally:
        _current[0] = 0.0
        wall = (time.perf_counter() - started) * 1000
        spent = (time.thread_time() - cpu) * 1000
        name = _name(self)
        total = _totals[name]
        total[0] += 1
        total[1] += wall
        total[2] += spent
        total[3] = max(total[3], wall)
        if wall > BLOCKED_MS:
            key = id(self) ^ int(started * 1e6)
            _stretches.append(
                {
                    "name": name,
                    "wall_ms": round(wall, 2),
                    "cpu_ms": round(spent, 2),
                    "at": started,
                    "samples": _samples.pop(key, []),
                }
            )
        else:
            _samples.pop(id(self) ^ int(started * 1e6), None)


def _stack(frame: Any) -> tuple[str, ...]:
    out = []
    while frame is not None:
        code = frame.f_code
        out.append(f"{_short(code.co_filename)}:{frame.f_lineno} {code.co_name}")
        frame = frame.f_back
    return tuple(out)


def _watchdog() -> None:
    while True:
        time.sleep(SAMPLE_EVERY_S)
        started, handle = _current
        if not started or (time.perf_counter() - started) * 1000 < BLOCKED_MS:
            continue
        frame = sys._current_frames().get(_loop_thread)
        if frame is not None and _current[0] == started:
            _samples[id(handle) ^ int(started * 1e6)].append(_stack(frame))


_gc: dict[int, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])  # n, ms, max
_gc_started = [0.0]


def _on_gc(phase: str, info: dict[str, int]) -> None:
    # Collections on any thread: the GIL holds every other thread meanwhile, the loop too.
    if phase == "start":
        _gc_started[0] = time.perf_counter()
        return
    ms = (time.perf_counter() - _gc_started[0]) * 1000
    figures = _gc[info["generation"]]
    figures[0] += 1
    figures[1] += ms
    figures[2] = max(figures[2], ms)


# By pool (thread name prefix): calls, and each call's wait for a thread and time on it (ms).
_pools: dict[str, list[list[float]]] = collections.defaultdict(lambda: [[], []])


def _watch_pools() -> None:
    """Time the app's calls to its own thread pools (webapp.execution.dbthreads.on)."""
    from webapp.execution import dbthreads

    original = dbthreads.on

    async def on(executor: Any, fn: Any, *args: Any) -> Any:
        queued = time.perf_counter()
        started: list[float] = []

        def call(*call_args: Any) -> Any:
            started.append(time.perf_counter())
            return fn(*call_args)

        try:
            return await original(executor, call, *args)
        finally:
            if started:
                waits, runs = _pools[getattr(executor, "_thread_name_prefix", "?")]
                waits.append((started[0] - queued) * 1000)
                runs.append((time.perf_counter() - started[0]) * 1000)

    dbthreads.on = on  # type: ignore[assignment]


def _reset(*_: Any) -> None:
    _totals.clear()
    _stretches.clear()
    _gc.clear()
    _pools.clear()


def report_path(pid: int) -> Path:
    """Where the server with this pid writes its findings."""
    return Path(tempfile.gettempdir()) / f"switchyard-loopwatch-{pid}.json"


def _snapshot(*_: Any) -> None:
    found = json.dumps(
        {"totals": dict(_totals), "stretches": _stretches, "gc": dict(_gc), "pools": dict(_pools)}
    )
    report_path(os.getpid()).write_text(found)


def install() -> None:
    """Time the loop's callbacks from now on. SIGUSR1 starts afresh (the burst begins),
    SIGUSR2 writes what was found so far (it ends)."""
    asyncio.events.Handle._run = _timed_run  # type: ignore[method-assign]
    threading.Thread(target=_watchdog, name="loopwatch", daemon=True).start()
    gc.callbacks.append(_on_gc)
    _watch_pools()
    signal.signal(signal.SIGUSR1, _reset)
    signal.signal(signal.SIGUSR2, _snapshot)


def summary(path: Path, *, top: int = 12) -> str:
    """What held the loop: stretches over BLOCKED_MS and the callbacks by total wall time."""
    data = json.loads(path.read_text())
    stretches = data["stretches"]
    lines = [
        f"loop held > {BLOCKED_MS:.0f} ms: {len(stretches)} times, "
        f"{sum(s['wall_ms'] for s in stretches):.0f} ms in all "
        f"(loop thread CPU in them {sum(s['cpu_ms'] for s in stretches):.0f} ms)"
    ]
    longest = sorted(stretches, key=lambda s: -s["wall_ms"])[:top]
    for s in longest:
        lines.append(f"  {s['wall_ms']:7.1f} ms wall {s['cpu_ms']:7.1f} ms cpu  {s['name']}")
    # Where the samples of the long stretches were: the innermost project frame and the
    # innermost frame of all, counted.
    where: collections.Counter[str] = collections.Counter()
    for s in stretches:
        for stack in s["samples"]:
            own = [f for f in stack if not f.startswith(("/", "asyncio", "twisted", "daphne"))]
            project = [f for f in own if f.startswith(("webapp", "graphs"))]
            leaf = stack[0] if stack else "?"
            where[f"{project[0] if project else (own[0] if own else '?')}  <-  leaf {leaf}"] += 1
    if where:
        every = f"every {SAMPLE_EVERY_S * 1000:.0f} ms"
        lines.append(f"samples in those stretches ({every}), by place:")
        for place, count in where.most_common(top):
            lines.append(f"  {count:5d}  {place}")
    for generation, (n, ms, peak) in sorted(data.get("gc", {}).items()):
        lines.append(
            f"garbage collections, generation {generation}: {int(n)}, "
            f"{ms:.0f} ms in all, longest {peak:.1f} ms"
        )
    lines.append(
        "thread pools: calls, wait for a thread p50/p95/max ms, "
        "on the thread until the loop has the result p50/p95 ms"
    )
    for pool, (waits, runs) in sorted(data.get("pools", {}).items()):
        w, r = sorted(waits), sorted(runs)

        def q(values: list[float], f: float) -> float:
            return values[min(len(values) - 1, int(f * len(values)))] if values else 0.0

        lines.append(
            f"  {pool:18s} {len(w):6d}  {q(w, 0.5):7.1f} {q(w, 0.95):7.1f} {q(w, 1):7.1f}"
            f"   {q(r, 0.5):7.1f} {q(r, 0.95):7.1f}"
        )
    lines.append("callbacks by total wall time on the loop (n, wall ms, cpu ms, max ms):")
    ranked = sorted(data["totals"].items(), key=lambda kv: -kv[1][1])[:top]
    for name, (n, wall, cpu, peak) in ranked:
        lines.append(f"  {int(n):7d} {wall:9.0f} {cpu:9.0f} {peak:7.1f}  {name}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, ROOT)  # the script's own directory is bench/; the app is the root's
    install()
    from daphne.cli import CommandLineInterface

    CommandLineInterface.entrypoint()
