"""Runs waiting for a person: 1,000 parked at once, on the embedded default and on Celery.

    .venv/bin/python bench/waiting.py [--runs 1000] [--answers 40] [--window 3]
                                      [--no-embedded] [--no-celery]

What it measures, for each driver, in one go:

- **Holding**: the process that executes runs (the embedded server: a child process on
  its own SQLite file, the in-process driver on its own loop; on Celery: one
  ``celery -A webapp worker --pool threads`` process on a PostgreSQL database and a Redis
  database of its own) is measured idle (RSS, CPU seconds over ``--window`` s, threads),
  then again once ``--runs`` runs of an approval flow all wait at once. A parked run
  should cost a row, not a thread, a task or a slot: the figures are the differences, and
  what is left per waiting run.
- **Resume latency**: ``--answers`` of the waiting runs are answered one at a time through
  ``webapp.runs.approvals.answer`` (what the API calls); the figure is the time from the
  call to the next node's ``node_started`` (p50/p95). Measured against two floors taken
  in the same run, from a plain two-node flow started just before each answer (so both
  are measured with the runs waiting): **start** (the driver's ``start`` to the
  first node's ``node_started``: claim the run in the database, hand it on, start a node)
  and **hop** (a node's ``node_finished`` to the next node's ``node_started``).
- **Its own floor** (asserted): a resume claims the run with a row update, so no
  approval->next start can take less than one database round trip (``SELECT 1``, median,
  measured in the same process); and every answered run must finish succeeded, and no
  parked run may hold a task or a slot (Celery: ``NodeTask`` / ``Slot`` rows).

The flows: ``ask`` (approval, "Approve?") -> ``yes`` (template) -> output; and
``a`` (template) -> ``b`` (template) -> output for the floors. No model calls.
Exits 1 when an assertion fails. Needs PostgreSQL and Redis on 127.0.0.1 for the Celery
part (tests/services.py starts them if need be). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._live import machine_line, pct, table, verdict
from bench.scaleout import DB_PREFIX, base_env, drop_stale_databases, proc_cpu_s

ROOT = Path(__file__).resolve().parent.parent


def node(id_: str, type_: str, **config: Any) -> dict[str, Any]:
    return {"id": id_, "type": type_, "config": config, "position": {"x": 0, "y": 0}}


def edge(source: str, port: str, target: str, target_port: str) -> dict[str, Any]:
    return {"source": source, "target": target, "source_port": port, "target_port": target_port}


def graph(name: str, nodes: list[dict], edges: list[dict]) -> dict[str, Any]:
    return {"directed": True, "multigraph": True, "graph": {"name": name}, "nodes": nodes,
            "edges": edges}  # fmt: skip


APPROVAL = graph(
    "approval",
    [node("ask", "approval", message="Approve?"),
     node("yes", "template", template="{{ a.action }}"), node("out", "output", name="answer")],
    [edge("ask", "approve", "yes", "a"), edge("yes", "text", "out", "value")],
)  # fmt: skip
PLAIN = graph(
    "plain",
    [node("a", "template", template="x"), node("b", "template", template="{{ v }}"),
     node("out", "output", name="answer")],
    [edge("a", "text", "b", "v"), edge("b", "text", "out", "value")],
)  # fmt: skip


# Measuring a process ---------------------------------------------------------------------


def status_field(pid: int, name: str) -> int:
    """A number from /proc/<pid>/status (VmRSS in kB, Threads)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise KeyError(name)


def window(pid: int, seconds: float) -> dict[str, float]:
    """The process over `seconds` of doing nothing on purpose: RSS, CPU, threads."""
    cpu0 = proc_cpu_s(pid)
    time.sleep(seconds)
    return {
        "rss_mb": status_field(pid, "VmRSS") / 1024,
        "cpu_s": proc_cpu_s(pid) - cpu0,
        "threads": status_field(pid, "Threads"),
    }


def round_trip_ms(samples: int = 200) -> float:
    """The median of a ``SELECT 1`` from this process to its database."""
    from django.db import connection

    times = []
    with connection.cursor() as cursor:
        for _ in range(samples):
            t0 = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def credential_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


# What both drivers do --------------------------------------------------------------------


class Driving:
    """One driver's round, run in a process where Django is set up for it."""

    def __init__(self, args: argparse.Namespace, executor_pid: int):
        from django.contrib.auth import get_user_model

        from webapp.flows import services
        from webapp.runs.models import NodeTask, Run, RunEvent, Slot

        self.args, self.pid = args, executor_pid
        self.Run, self.RunEvent, self.NodeTask, self.Slot = Run, RunEvent, NodeTask, Slot
        self.user = get_user_model().objects.create_user(f"bench{secrets.token_hex(3)}")
        self.approval = services.create(self.user, "approval", APPROVAL)
        self.plain = services.create(self.user, "plain", PLAIN)

    def create(self, flow, count: int) -> list[int]:
        version = flow.current()
        runs = [
            self.Run(flow=flow, flow_version=version, started_by=self.user) for _ in range(count)
        ]
        return [run.pk for run in self.Run.objects.bulk_create(runs)]

    def start(self, run_id: int) -> None:
        from webapp import execution

        notice = execution.start(run_id)
        if notice:
            raise RuntimeError(notice)

    def wait(self, ids: list[int], status: str, timeout: float = 150) -> float:
        """Seconds until every run of `ids` has `status` (raises past `timeout`), and the
        driver has done with them (the in-process driver stores a run's status before its
        task ends: the next measurement must not share the process with that tail)."""
        from asgiref.sync import async_to_sync

        from webapp import execution

        t0 = time.monotonic()
        while True:
            left = self.Run.objects.filter(pk__in=ids).exclude(status=status)
            if not left.exists():
                async_to_sync(execution.driver().wait_idle)()
                return time.monotonic() - t0
            bad = left.filter(status__in=("failed", "cancelled")).first()
            if bad is not None:
                raise RuntimeError(f"run {bad.pk} {bad.status}: {bad.error}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"{left.count()} of {len(ids)} runs not {status}")
            time.sleep(0.002 if len(ids) == 1 else 0.2)

    def started(self, run_id: int, node_id: str) -> float:
        return self.event(run_id, "node_started", node_id)["ts"]

    def event(self, run_id: int, type_: str, node_id: str) -> dict[str, Any]:
        rows = self.RunEvent.objects.filter(run_id=run_id, type=type_)
        return next(p for p in rows.values_list("payload", flat=True) if p["node"] == node_id)

    def floor(self) -> tuple[float, float]:
        """One plain run, created and started at once: ms from its start to its first node
        starting, and from that node's end to the next one's start."""
        [run_id] = self.create(self.plain, 1)
        t0 = time.time()
        self.start(run_id)
        self.wait([run_id], "succeeded")
        finished_a = self.event(run_id, "node_finished", "a")["ts"]
        return (self.started(run_id, "a") - t0) * 1000, (
            self.started(run_id, "b") - finished_a
        ) * 1000

    def answer(self, run_id: int) -> float:
        """Answer a parked run: ms from the answer to its next node (``yes``) starting."""
        from webapp.runs import approvals

        t0 = time.time()
        approvals.answer(self.user, run_id, "ask", "approve", {})
        self.wait([run_id], "succeeded")
        return (self.started(run_id, "yes") - t0) * 1000

    def park(self, count: int) -> tuple[list[int], float]:
        """`count` approval runs started and parked; the seconds that took."""
        t0 = time.monotonic()
        ids: list[int] = []
        # Created as they are started, 50 at a time: the celery driver's sweeper begins by
        # itself a run left queued and unsent for 2 s, which would muddle the figures.
        while len(ids) < count:
            chunk = self.create(self.approval, min(50, count - len(ids)))
            for run_id in chunk:
                self.start(run_id)
            ids += chunk
        self.wait(ids, "waiting", timeout=170)
        return ids, time.monotonic() - t0

    def round(self) -> dict[str, Any]:
        from webapp import execution

        args = self.args
        rt = round_trip_ms()
        # Warm-up: the flows compiled, the code paths imported, in the executor too; and a
        # burst parked and cancelled, so that the executor's thread pools (which grow as
        # work comes, up to their bounds) have grown before the idle measurement.
        for _ in range(3):
            self.floor()
        warm, _ = self.park(min(100, args.runs))
        for run_id in warm[:3]:
            self.answer(run_id)
        for run_id in warm[3:]:
            execution.cancel(run_id)
        self.wait(warm[3:], "cancelled")

        gc.collect()
        idle = window(self.pid, args.window)
        ids, park_s = self.park(args.runs)
        held = {
            "tasks": self.NodeTask.objects.filter(run_id__in=ids).exclude(status="done").count(),
            "slots": self.Slot.objects.filter(task__run_id__in=ids).count(),
        }
        gc.collect()
        waiting = window(self.pid, args.window)
        # The floors interleaved with the answers: both measured with the runs waiting.
        latencies, start, hop = [], [], []
        for run_id in ids[: args.answers]:
            to_first, to_next = self.floor()
            start.append(to_first)
            hop.append(to_next)
            latencies.append(self.answer(run_id))
        return {
            "runs": args.runs,
            "round_trip_ms": rt,
            "idle": idle,
            "waiting": waiting,
            "park_s": park_s,
            "held": held,
            "resume_ms": latencies,
            "floor_start_ms": start,
            "floor_hop_ms": hop,
        }


# The embedded default: a child process -----------------------------------------------------


def embedded(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    env = {
        **base_env(),
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "DATABASE_URL": f"sqlite:///{tmp / 'embedded.sqlite3'}",
        "SWITCHYARD_RUN_DRIVER": "inprocess",
        "DEBUG": "0",
        "SECRET_KEY": "bench-" + secrets.token_hex(16),
        "SWITCHYARD_CREDENTIAL_KEYS": credential_key(),
        "PYTHONUNBUFFERED": "1",
    }
    migrate(env)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", *child_args(args)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"embedded child failed:\n{done.stdout}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_args(args: argparse.Namespace) -> list[str]:
    return ["--runs", str(args.runs), "--answers", str(args.answers), "--window",
            str(args.window)]  # fmt: skip


def embedded_child(args: argparse.Namespace) -> None:
    import django

    django.setup()
    # The in-process driver runs everything on this process's own loop, as a server would.
    result = Driving(args, os.getpid()).round()
    result["python_threads"] = threading.active_count()
    print(json.dumps(result))


def migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{done.stdout}{done.stderr}")


# Celery: PostgreSQL + Redis + one worker, driven from this process ------------------------


def celery(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import psycopg
    import redis

    from tests.services import (
        HOST,
        REDIS_PORT,
        Worker,
        claim_redis_db,
        database_url,
        ensure_postgres,
        ensure_redis,
    )

    admin_url = ensure_postgres()
    ensure_redis()
    drop_stale_databases(admin_url)
    database = f"{DB_PREFIX}{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    redis_db = claim_redis_db()
    broker = redis.Redis(host=HOST, port=REDIS_PORT, db=redis_db)
    env = {
        **base_env(),
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "DATABASE_URL": database_url(database),
        "REDIS_URL": f"redis://{HOST}:{REDIS_PORT}/{redis_db}",
        "SWITCHYARD_RUN_DRIVER": "celery",
        "DEBUG": "0",
        "SECRET_KEY": "bench-" + secrets.token_hex(16),
        "SWITCHYARD_CREDENTIAL_KEYS": credential_key(),
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    }
    worker = None
    try:
        migrate(env)
        os.environ.update(env)
        import django

        django.setup()
        worker = Worker(f"waiting-{os.getpid()}", env, tmp / "worker.log", "threads", 16)
        worker.start()
        worker.wait_ready()
        return Driving(args, worker.pid).round()
    finally:
        if worker is not None:
            worker.stop()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        broker.flushdb()


# Report -----------------------------------------------------------------------------------


def report(name: str, r: dict[str, Any]) -> tuple[list[list[Any]], list[tuple[str, bool]]]:
    idle, waiting, runs = r["idle"], r["waiting"], r["runs"]
    resume, start, hop = r["resume_ms"], r["floor_start_ms"], r["floor_hop_ms"]
    extra_mb = waiting["rss_mb"] - idle["rss_mb"]
    rows = [
        [name, "RSS idle / waiting (MB)", f"{idle['rss_mb']:.1f} / {waiting['rss_mb']:.1f}",
         f"+{extra_mb:.1f} MB, {extra_mb * 1024 / runs:.1f} kB per waiting run"],
        [name, f"CPU over {r['window_s']:.0f} s idle / waiting (s)",
         f"{idle['cpu_s']:.2f} / {waiting['cpu_s']:.2f}",
         f"{waiting['cpu_s'] / r['window_s'] * 100:.1f}% of a core while {runs} wait"],
        [name, "threads idle / waiting", f"{idle['threads']} / {waiting['threads']}", ""],
        [name, f"{runs} runs started -> all parked (s)", f"{r['park_s']:.1f}",
         f"{r['park_s'] / runs * 1000:.1f} ms per run"],
        [name, "approval -> next node started p50 / p95 (ms)",
         f"{pct(resume, 50):.1f} / {pct(resume, 95):.1f}", f"{len(resume)} answers"],
        [name, "floor: start -> first node p50 / p95 (ms)",
         f"{pct(start, 50):.1f} / {pct(start, 95):.1f}",
         f"approval/start p50 {pct(resume, 50) / pct(start, 50):.2f}x"],
        [name, "floor: node -> next node p50 / p95 (ms)",
         f"{pct(hop, 50):.1f} / {pct(hop, 95):.1f}",
         f"approval/hop p50 {pct(resume, 50) / max(pct(hop, 50), 1e-3):.1f}x"],
        [name, "database round trip (SELECT 1, median ms)", f"{r['round_trip_ms']:.2f}", ""],
    ]  # fmt: skip
    checks = [
        (f"{name}: approval->next start p50 >= one DB round trip",
         pct(resume, 50) >= r["round_trip_ms"]),
        (f"{name}: no parked run holds a task or a slot", r["held"] == {"tasks": 0, "slots": 0}),
        # A thread per waiting run would show as +runs; pools still growing, as a few.
        (f"{name}: fewer than 1 thread more per 100 waiting runs",
         waiting["threads"] - idle["threads"] < runs / 100),
    ]  # fmt: skip
    return rows, checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--answers", type=int, default=40)
    parser.add_argument("--window", type=float, default=3.0)
    parser.add_argument("--no-embedded", action="store_true")
    parser.add_argument("--no-celery", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        embedded_child(args)
        return 0
    print(machine_line())
    print(f"{args.runs} waiting runs, {args.answers} answered one at a time, "
          f"{args.window:.0f} s measuring windows")  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="switchyard-waiting-"))
    results: dict[str, dict[str, Any]] = {}
    t0 = time.monotonic()
    try:
        if not args.no_embedded:
            results["embedded"] = embedded(args, tmp)
        if not args.no_celery:
            results["celery"] = celery(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows, checks = [], []
    for name, result in results.items():
        result["window_s"] = args.window
        more_rows, more_checks = report(name, result)
        rows += more_rows
        checks += more_checks
    print(table(["driver", "figure", "value", "against"], rows))
    for label, ok in checks:
        print(f"{verdict(ok)}  {label}")
    print(f"({time.monotonic() - t0:.0f} s in all)")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
