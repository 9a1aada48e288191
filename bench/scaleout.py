"""Scale-out: a burst of runs on the celery driver with 1, 2 and 4 workers, and in-process.

    .venv/bin/python bench/scaleout.py [--runs 200] [--workers 1,2,4] [--concurrency 16]
                                       [--cap 16] [--delay 0.3] [--alone 3] [--no-inprocess]
                                       [--inprocess-rounds nocap,capped] [--profile DIR]

``--workers none`` skips the celery rounds; ``--inprocess-rounds nocap`` runs only the
in-process round without a provider cap (with ``--workers none``: that round alone, to
compare trees back to back). ``--profile DIR`` writes a cProfile of the in-process
child's burst (its event loop thread) to DIR/inprocess-<nocap|capped>.prof and the CPU
seconds of each of its threads over the burst to DIR/inprocess-<...>.threads.json.

Sets up everything of its own: a PostgreSQL database on 127.0.0.1:5432
(``switchyard_bench_<pid>_<hex>``, migrated with ``manage.py migrate``, dropped at the end),
a Redis database number nobody uses (tests/services.py's claim, flushed at the end), and
the fake Anthropic API in this process. The workload is tests/scaleout/flows.py's
``fan_out``: input -> 5 model calls of DELAY s in parallel -> merge -> a final call of
DELAY s -> output, i.e. 6 model calls per run, 2 of them on the critical path. Every run
gets a topic of its own, so no run hits the node cache of another.

For each worker count N: N ``celery -A webapp worker --pool threads --concurrency C``
processes (the Procfile's command; C defaults to its 16, the same as the default cap, so
one worker could fill the cap only if every one of its threads were in a model call) with
the provider cap ``SWITCHYARD_ANTHROPIC_CONCURRENCY=CAP``; a warm-up batch of 2N runs,
ALONE runs one at a time (latency with nothing queued), then RUNS runs created and handed
to the broker at once (``CeleryDriver.send_begin``). Wall time runs from the first send to
the last run's ``finished_at``. Then the same phases on the in-process driver
(``InProcessDriver``, in a subprocess of its own, start all then ``wait_idle``), twice: as
``SWITCHYARD_ANTHROPIC_CONCURRENCY=0`` (no provider cap: each run only has its own
max_concurrency) and with the workers' ``CAP`` (the driver's own provider cap,
webapp.execution.provider_cap).

The physical limit, measured against: with CAP model calls in flight at most and DELAY s
each, CAP / DELAY calls/s, i.e. CAP / DELAY / 6 runs/s. The fake model server's own
ceiling is measured in the same run (a client process firing 4 x CAP calls at once).

Tables: throughput (and the mean number of model calls in flight, i.e. how much of the
cap was used); scheduling latency under the burst and alone (NodeTask created -> claimed,
and node made ready -> node_started from the event log, for both drivers); CPU seconds of
the driver's processes, of our database's PostgreSQL backends and of Redis during the
burst, with what those backends were doing (sampled from pg_stat_activity: running,
waiting on a slot scope's advisory lock, on a row lock, idle in a transaction); and where
the worker threads' time went (before, in and after each node).

Checks: every run succeeded, the fake server saw exactly 6 calls for each run, and every
run's event log is seq 1..N without a gap; the fake server never had more than CAP
calls at once in a capped round; lease takeovers are counted. Issue 18's target 2 (worker
CPU per run <= 0.1 s, 2 workers >= 0.8x the limit, alone ready->started p50 < 15 ms) is
printed with a verdict, and fails the benchmark when missed. The machine is
shared: ``machine busy`` says how much of it other processes took. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._live import listen_overflows, machine_line, pct, table, verdict

ROOT = Path(__file__).resolve().parent.parent
CALLS_PER_RUN = 6  # 5 branches + the final call
DB_PREFIX = "switchyard_bench_"
TOKEN = re.compile(r"\btok(\d+)x\b")
TICK = os.sysconf("SC_CLK_TCK")
# Our database's backends (this process's own excepted) by what they are doing.
BACKENDS = """
    SELECT count(*),
        count(*) FILTER (WHERE state = 'active' AND wait_event_type IS DISTINCT FROM 'Lock'),
        count(*) FILTER (WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'),
        count(*) FILTER (WHERE wait_event_type = 'Lock' AND wait_event <> 'advisory'),
        count(*) FILTER (WHERE state = 'idle in transaction')
    FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()
"""


# Environment -------------------------------------------------------------------------


def base_env() -> dict[str, str]:
    """This process's environment without anything that configures Switchyard."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ANTHROPIC_", "DJANGO_", "CELERY_", "SWITCHYARD_"))
        and name not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG")
    }


def drop_stale_databases(admin_url: str) -> None:
    """Drop the databases of earlier benchmarks that died before they could."""
    import psycopg

    from tests.services import pid_alive

    with psycopg.connect(admin_url, autocommit=True) as admin:
        for (name,) in admin.execute("SELECT datname FROM pg_database").fetchall():
            pid = name[len(DB_PREFIX) :].split("_")[0] if name.startswith(DB_PREFIX) else ""
            if pid.isdigit() and not pid_alive(int(pid)):
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# CPU accounting ----------------------------------------------------------------------


def proc_cpu_s(pid: int, stat: str = "") -> float:
    """User + system CPU seconds of a process (all its threads), or of the thread whose
    stat file is `stat`; 0 once it is gone."""
    try:
        fields = Path(stat or f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, every session on it included."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class CpuMeter:
    """CPU seconds used between start() and stop(): by given processes, by the PostgreSQL
    backends of our database, by the Redis server, and the machine's busy share."""

    def __init__(self, database: str, redis_client: Any):
        self.database = database
        self.redis = redis_client

    def pg_backends(self) -> dict[int, float]:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.database],
            )
            return {pid: proc_cpu_s(pid) for (pid,) in cursor.fetchall()}

    def redis_cpu(self) -> float:
        info = self.redis.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def start(self, pids: list[int]) -> None:
        self.pids = pids
        self.t0 = time.monotonic()
        self.proc0 = {pid: proc_cpu_s(pid) for pid in pids}
        self.pg0 = self.pg_backends()
        self.redis0 = self.redis_cpu()
        self.jiffies0 = machine_jiffies()

    def stop(self) -> dict[str, float]:
        busy1, total1 = machine_jiffies()
        pg1 = self.pg_backends()
        return {
            "wall": time.monotonic() - self.t0,
            "procs": sum(proc_cpu_s(pid) - self.proc0[pid] for pid in self.pids),
            "postgres": sum(cpu - self.pg0.get(pid, 0.0) for pid, cpu in pg1.items()),
            "redis": self.redis_cpu() - self.redis0,
            "busy": (busy1 - self.jiffies0[0]) / max(1, total1 - self.jiffies0[1]),
        }


# Results -----------------------------------------------------------------------------


@dataclass
class Round:
    driver: str
    workers: str
    runs: int = 0
    wall: float = float("nan")
    calls: int = 0
    created_to_claimed: list[float] = field(default_factory=list)  # ms, burst
    ready_to_started: list[float] = field(default_factory=list)  # ms, burst
    call_s: list[float] = field(default_factory=list)  # llm node_started -> node_finished
    # Thread-seconds of the workers' node tasks by phase (celery only): claimed ->
    # node_started, node_started -> node_finished, node_finished -> the task closed.
    phases: dict[str, float] = field(default_factory=dict)
    alone_run_ms: list[float] = field(default_factory=list)
    alone_ready_to_started: list[float] = field(default_factory=list)
    alone_created_to_claimed: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    max_connections: int = 0
    # Sums over the samples taken while the burst ran: our database's backends that were
    # active, waiting on an advisory lock (the slots' scopes), waiting on a row lock (a
    # run's row, a task's), idle inside a transaction.
    pg_samples: Counter[str] = field(default_factory=Counter)
    takeovers: int = 0
    max_in_flight: int = 0  # the most model calls the fake server had at once
    # In-process: the burst's event log writes (transactions) and the events they held.
    log_writes: dict[str, float] = field(default_factory=dict)
    capped: bool = True
    problems: list[str] = field(default_factory=list)

    @property
    def runs_per_s(self) -> float:
        return self.runs / self.wall

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.wall

    @property
    def in_flight(self) -> float:
        """Model calls in flight on average over the wall time."""
        return sum(self.call_s) / self.wall


# The benchmark -----------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="switchyard-scaleout-"))
        self.serial = 0
        self.rounds: list[Round] = []
        self.keep_logs = args.keep_logs

    # Set-up ----------------------------------------------------------------------------

    def setup(self) -> None:
        import psycopg
        import redis

        import tests.fakes.anthropic_server as fake
        from tests.services import (
            HOST,
            REDIS_PORT,
            claim_redis_db,
            database_url,
            ensure_postgres,
            ensure_redis,
        )

        admin_url = ensure_postgres()
        ensure_redis()
        drop_stale_databases(admin_url)
        self.admin_url = admin_url
        self.database = f"{DB_PREFIX}{os.getpid()}_{secrets.token_hex(3)}"
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.database}"')
        self.redis_db = claim_redis_db()
        # Claimed: empty but for its owner key, which keeps other sessions off it.
        self.redis = redis.Redis(host=HOST, port=REDIS_PORT, db=self.redis_db)
        redis_url = f"redis://{HOST}:{REDIS_PORT}/{self.redis_db}"

        # A stdlib ThreadingHTTPServer listens with a backlog of 5 unless told otherwise.
        fake._Server.request_queue_size = 1024
        self.model = fake.FakeAnthropic().start()

        self.env = {
            **base_env(),
            "DJANGO_SETTINGS_MODULE": "webapp.settings",
            "DATABASE_URL": database_url(self.database),
            "REDIS_URL": redis_url,
            "SWITCHYARD_RUN_DRIVER": "celery",
            "SWITCHYARD_ANTHROPIC_CONCURRENCY": str(self.args.cap),
            "ANTHROPIC_BASE_URL": self.model.url,
            "ANTHROPIC_API_KEY": "x",
            # Production-like: DEBUG keeps a log of every query in every process.
            "DEBUG": "0",
            "SECRET_KEY": "bench-" + secrets.token_hex(16),
            # Required without DEBUG (webapp/env.py): a throwaway key for this run's rows.
            "SWITCHYARD_CREDENTIAL_KEYS": Fernet.generate_key().decode(),
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
        }
        os.environ.update(self.env)
        migrated = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if migrated.returncode != 0:
            raise RuntimeError(f"migrate failed:\n{migrated.stdout}{migrated.stderr}")

        import django

        django.setup()
        from django.contrib.auth import get_user_model

        from tests.scaleout.flows import fan_out
        from webapp.flows import services as flow_services

        self.graph = fan_out(branches=5, delay_s=self.args.delay)
        self.preds: dict[str, set[str]] = defaultdict(set)
        for edge in self.graph["edges"]:
            self.preds[edge["target"]].add(edge["source"])
        self.llm_nodes = {n["id"] for n in self.graph["nodes"] if n["type"] == "llm"}
        self.user = get_user_model().objects.create_user("bench", password="bench-only")
        self.flow = flow_services.create(self.user, "scale-out bench", self.graph)
        self.version = self.flow.current()
        from webapp.runs.models import CacheEntry, Run

        self.cpu = CpuMeter(self.database, self.redis)
        self.Run, self.CacheEntry = Run, CacheEntry

    def teardown(self) -> None:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if getattr(self, "model", None) is not None:
            self.model.stop()
        if getattr(self, "database", None):
            import psycopg

            with psycopg.connect(self.admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        if getattr(self, "redis", None) is not None:
            self.redis.flushdb()
        if self.keep_logs:
            print(f"(worker logs kept in {self.tmp})")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # Runs ------------------------------------------------------------------------------

    def create_runs(self, count: int) -> list[int]:
        """`count` queued runs, each on a topic of its own ("tok<serial>x")."""
        runs = []
        for _ in range(count):
            self.serial += 1
            runs.append(
                self.Run(
                    flow=self.flow,
                    flow_version=self.version,
                    started_by=self.user,
                    inputs={"topic": f"tok{self.serial}x"},
                )
            )
        return [run.pk for run in self.Run.objects.bulk_create(runs)]

    def unfinished(self, ids: list[int]) -> int:
        return self.Run.objects.filter(pk__in=ids).exclude(status__in=self.Run.FINISHED).count()

    def sample_backends(self, round_: Round) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(BACKENDS, [self.database])
            total, *counts = cursor.fetchone()
        round_.max_connections = max(round_.max_connections, total)
        round_.pg_samples["samples"] += 1
        for name, count in zip(("active", "advisory", "row", "idle_tx"), counts, strict=True):
            round_.pg_samples[name] += count

    def wait_finished(self, ids: list[int], round_: Round | None = None, timeout=900.0) -> None:
        deadline = time.monotonic() + timeout
        while (left := self.unfinished(ids)) > 0:
            if round_ is not None:
                self.sample_backends(round_)
            if time.monotonic() > deadline:
                statuses = Counter(
                    self.Run.objects.filter(pk__in=ids).values_list("status", flat=True)
                )
                raise RuntimeError(f"{left} of {len(ids)} runs unfinished: {dict(statuses)}")
            time.sleep(0.1)

    def celery_submit(self, ids: list[int]) -> float:
        from webapp.execution.distributed import CeleryDriver

        t0 = time.time()
        for run_id in ids:
            notice = CeleryDriver.send_begin(run_id)
            if notice is not None:
                raise RuntimeError(notice)
        return t0

    # Measuring -------------------------------------------------------------------------

    def events(self, ids: list[int]) -> dict[int, dict[str, dict[str, float]]]:
        """By run: the ts of run_started, and of each node's node_started / node_finished."""
        from webapp.runs.models import RunEvent

        found: dict[int, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        rows = RunEvent.objects.filter(
            run_id__in=ids, type__in=("run_started", "node_started", "node_finished")
        ).values_list("run_id", "type", "payload")
        for run_id, type_, payload in rows.iterator(chunk_size=2000):
            found[run_id][type_][payload.get("node", "")] = payload["ts"]
        return found

    def hops(self, ids: list[int]) -> tuple[list[float], list[float]]:
        """ms from a node being made ready (its last predecessor's node_finished, or
        run_started) to its node_started, for every node of every run; and the seconds
        each model call held its slot (its node_started to node_finished)."""
        gaps, calls = [], []
        for by_type in self.events(ids).values():
            started, finished = by_type["node_started"], by_type["node_finished"]
            begun = by_type["run_started"].get("")
            for node, ts in started.items():
                preds = self.preds.get(node)
                if not preds:
                    ready = begun
                elif preds <= finished.keys():
                    ready = max(finished[p] for p in preds)
                else:
                    ready = None  # a run that failed: no figure
                if ready is not None:
                    gaps.append((ts - ready) * 1000)
                if node in self.llm_nodes and node in finished:
                    calls.append(finished[node] - ts)
        return gaps, calls

    def phases(self, ids: list[int]) -> dict[str, float]:
        """Where the worker threads' time on node tasks went, in thread-seconds."""
        from webapp.runs.models import NodeTask

        events = self.events(ids)
        totals = dict.fromkeys(("before", "node", "after"), 0.0)
        rows = NodeTask.objects.filter(run_id__in=ids, finished_at__isnull=False)
        for run_id, node, claimed, closed in rows.values_list(
            "run_id", "node", "started_at", "finished_at"
        ):
            started = events[run_id]["node_started"].get(node)
            finished = events[run_id]["node_finished"].get(node)
            if claimed is None or started is None or finished is None:
                continue
            totals["before"] += started - claimed.timestamp()
            totals["node"] += finished - started
            totals["after"] += closed.timestamp() - finished
        return totals

    def claims(self, ids: list[int]) -> list[float]:
        """ms from each NodeTask's creation (made ready, in the coordinator's transaction)
        to its claim by a worker (started_at): the broker and the pool's queue."""
        from webapp.runs.models import NodeTask

        rows = NodeTask.objects.filter(run_id__in=ids, started_at__isnull=False)
        return [
            (started - created).total_seconds() * 1000
            for created, started in rows.values_list("created", "started_at")
        ]

    def check(self, round_: Round, ids: list[int], requests: list[dict]) -> None:
        from django.db.models import Count, Max, Min

        runs = self.Run.objects.filter(pk__in=ids)
        statuses = Counter(runs.values_list("status", flat=True))
        if statuses != {"succeeded": len(ids)}:
            round_.problems.append(f"statuses: {dict(statuses)}")
        tokens = dict(runs.values_list("inputs__topic", "pk"))
        per_run: Counter[int] = Counter()
        strays = 0
        for body in requests:
            text = json.dumps(body.get("messages", []))
            found = {int(t) for t in TOKEN.findall(text)}
            owners = {tokens.get(f"tok{t}x") for t in found} - {None}
            if len(owners) != 1:
                strays += 1
                continue
            per_run[owners.pop()] += 1
        wrong = {run_id: per_run[run_id] for run_id in ids if per_run[run_id] != CALLS_PER_RUN}
        if wrong or strays:
            round_.problems.append(
                f"model calls per run not {CALLS_PER_RUN}: {len(wrong)} runs "
                f"(e.g. {dict(list(wrong.items())[:5])}), {strays} calls of no run"
            )
        round_.calls = sum(per_run[run_id] for run_id in ids)
        logs = runs.annotate(n=Count("events"), lo=Min("events__seq"), hi=Max("events__seq"))
        gappy = [
            pk for pk, n, lo, hi, last in logs.values_list("pk", "n", "lo", "hi", "last_seq")
            if not (n == hi == last and lo == 1)
        ]  # fmt: skip
        if gappy:
            round_.problems.append(f"event log not 1..N in {len(gappy)} runs: {gappy[:5]}")
        from webapp.runs.models import RunEvent

        round_.takeovers = RunEvent.objects.filter(
            run_id__in=ids, type="node_retrying", payload__takeover=True
        ).count()

    def forget(self, ids: list[int]) -> None:
        """Delete a round's runs (their tasks and events go with them) and the cache."""
        self.Run.objects.filter(pk__in=ids).delete()
        self.CacheEntry.objects.all().delete()

    # Rounds ----------------------------------------------------------------------------

    def celery_round(self, count: int) -> Round:
        from tests.services import Worker

        args = self.args
        round_ = Round("celery", f"{count} x {args.concurrency}")
        workers = [
            Worker(
                f"bench{count}-{i}-{os.getpid()}",
                self.env,
                self.tmp / f"workers{count}-{i}.log",
                "threads",
                args.concurrency,
            )
            for i in range(1, count + 1)
        ]
        all_ids: list[int] = []
        try:
            for worker in workers:
                worker.start()
            for worker in workers:
                # A shared machine under load can take a minute to import and connect.
                worker.wait_ready(timeout=240)

            warm = self.create_runs(2 * count)
            all_ids += warm
            self.celery_submit(warm)
            self.wait_finished(warm)

            alone: list[int] = []
            for _ in range(args.alone):
                ids = self.create_runs(1)
                alone += ids
                self.celery_submit(ids)
                self.wait_finished(ids)
            all_ids += alone
            self.alone_figures(round_, alone)
            round_.alone_created_to_claimed = self.claims(alone)

            burst = self.create_runs(args.runs)
            all_ids += burst
            self.model.reset()
            self.cpu.start([w.pid for w in workers])
            t0 = self.celery_submit(burst)
            self.wait_finished(burst, round_)
            round_.cpu = self.cpu.stop()
            round_.max_in_flight = self.model.max_in_flight
            self.burst_figures(round_, burst, t0)
            round_.created_to_claimed = self.claims(burst)
            round_.phases = self.phases(burst)
        except BaseException:
            self.keep_logs = True
            raise
        finally:
            for worker in workers:
                worker.stop()
        if round_.problems:
            self.keep_logs = True
        self.forget(all_ids)
        return round_

    def inprocess_round(self, capped: bool) -> Round:
        from tests.services import _die_with_parent

        args = self.args
        label = f"provider cap {args.cap}" if capped else "no provider cap"
        round_ = Round("in-process", f"1 process, {label}")
        warm, alone, burst = (
            self.create_runs(2),
            self.create_runs(args.alone),
            self.create_runs(args.runs),
        )
        plan = self.tmp / f"inprocess-{int(capped)}.json"
        plan.write_text(json.dumps({"warm": warm, "alone": alone, "burst": burst}))
        # The driver's own provider cap, the setting the workers get (0: none).
        env = {
            **self.env,
            "SWITCHYARD_RUN_DRIVER": "inprocess",
            "SWITCHYARD_ANTHROPIC_CONCURRENCY": str(args.cap if capped else 0),
        }
        command = [sys.executable, str(Path(__file__).resolve()), "--child-inprocess", str(plan)]
        if args.profile:
            into = Path(args.profile).resolve()
            into.mkdir(parents=True, exist_ok=True)
            name = "capped" if capped else "nocap"
            command += ["--profile", str(into / f"inprocess-{name}")]
        out = self.tmp / f"inprocess-{int(capped)}.out"
        with open(out, "w") as errors:
            child = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
                preexec_fn=_die_with_parent,  # gone with this process, however it ends
            )
        try:
            assert child.stdout is not None
            line = child.stdout.readline()  # "burst" once warm-up and alone runs are done
            if line.strip() != "burst":
                raise RuntimeError(f"in-process child: {line!r}\n{out.read_text()}")
            self.model.reset()
            self.cpu.start([child.pid])
            lines: list[str] = []
            reader = threading.Thread(target=lambda: lines.append(child.stdout.readline()))
            reader.start()
            while reader.is_alive():
                self.sample_backends(round_)
                reader.join(0.1)
            round_.cpu = self.cpu.stop()
            round_.max_in_flight = self.model.max_in_flight
            round_.capped = capped
            result = json.loads(lines[0] or "{}")
            round_.log_writes = {k: v for k, v in result.items() if k != "t0"}
            if child.wait(timeout=60) != 0 or "t0" not in result:
                raise RuntimeError(f"in-process child failed:\n{out.read_text()}")
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        self.alone_figures(round_, alone)
        self.burst_figures(round_, burst, result["t0"])
        if round_.problems:
            self.keep_logs = True
        self.forget(warm + alone + burst)
        return round_

    def alone_figures(self, round_: Round, ids: list[int]) -> None:
        round_.alone_run_ms = [
            (finished - started).total_seconds() * 1000
            for started, finished in self.Run.objects.filter(pk__in=ids).values_list(
                "started_at", "finished_at"
            )
        ]
        round_.alone_ready_to_started, _ = self.hops(ids)

    def burst_figures(self, round_: Round, ids: list[int], t0: float) -> None:
        from django.db.models import Max

        last = self.Run.objects.filter(pk__in=ids).aggregate(last=Max("finished_at"))["last"]
        round_.runs = len(ids)
        round_.wall = last.timestamp() - t0
        round_.ready_to_started, round_.call_s = self.hops(ids)
        self.check(round_, ids, self.model.message_requests)

    # The fake model server's own ceiling -------------------------------------------------

    def model_ceiling(self) -> dict[str, float]:
        concurrency = 4 * self.args.cap
        total = 4 * concurrency
        command = [
            sys.executable, str(Path(__file__).resolve()), "--child-probe", self.model.url,
            "--probe-concurrency", str(concurrency), "--probe-calls", str(total),
            "--delay", str(self.args.delay),
        ]  # fmt: skip
        done = subprocess.run(
            command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"model probe failed:\n{done.stderr}")
        self.model.reset()
        return json.loads(done.stdout)

    # Report ----------------------------------------------------------------------------

    def report(self, ceiling: dict[str, float], overflows: int) -> bool:
        args = self.args
        limit_calls = args.cap / args.delay
        limit_runs = limit_calls / CALLS_PER_RUN
        print()
        print(
            f"scale-out: {args.runs} runs at once of input -> 5 x llm ({args.delay * 1000:.0f} ms "
            f"at the fake model) -> merge -> llm ({args.delay * 1000:.0f} ms) -> output; "
            f"{CALLS_PER_RUN} model calls per run"
        )
        print(
            f"provider cap SWITCHYARD_ANTHROPIC_CONCURRENCY={args.cap}: limit {args.cap} / "
            f"{args.delay:g} s = {limit_calls:.1f} calls/s = {limit_runs:.2f} runs/s "
            f"({args.runs} runs in >= {args.runs / limit_runs:.1f} s); "
            f"workers: celery --pool threads --concurrency {args.concurrency}"
        )
        print(
            f"fake model server alone: {ceiling['calls_per_s']:.1f} calls/s with "
            f"{ceiling['concurrency']} calls in flight ({ceiling['calls']} calls of "
            f"{args.delay:g} s; ideal {ceiling['concurrency'] / args.delay:.1f}/s, "
            f"{ceiling['calls_per_s'] * args.delay / ceiling['concurrency']:.2f} of it)"
        )
        print(machine_line())
        print()
        base = next((r for r in self.rounds if r.driver == "celery"), None)
        rows = []
        for r in self.rounds:
            scaling = (
                f"{r.runs_per_s / base.runs_per_s:.2f}"
                if base is not None and r.driver == "celery"
                else "-"
            )
            rows.append(
                [
                    r.driver,
                    r.workers,
                    r.wall,
                    f"{r.runs_per_s:.2f}",
                    r.calls_per_s,
                    f"{r.calls_per_s / limit_calls:.2f}",
                    r.in_flight,
                    f"{statistics.mean(r.call_s) * 1000:.0f}" if r.call_s else "-",
                    scaling,
                ]
            )
        headers = [
            "driver",
            "workers x threads",
            "wall s",
            "runs/s",
            "calls/s",
            "x limit",
            "calls in flight",
            "call ms",
            "x 1 worker",
        ]
        print(table(headers, rows))
        print(
            f"(x limit: calls/s over the cap-bound {limit_calls:.1f}/s; calls in flight: mean "
            f"number of model calls holding a slot, over the wall time (cap {args.cap}); call ms:"
            " mean node_started -> node_finished of the llm nodes, slot held; x 1 worker: "
            "runs/s over the 1-worker row)"
        )
        if summary := self.summary():
            print(summary)
        print()

        def p50_95(values: list[float]) -> str:
            return f"{pct(values, 50):.0f} / {pct(values, 95):.0f}" if values else "-"

        rows = [
            [
                r.driver,
                r.workers,
                p50_95(r.created_to_claimed),
                p50_95(r.ready_to_started),
                f"{statistics.median(r.alone_run_ms):.0f}" if r.alone_run_ms else "-",
                p50_95(r.alone_created_to_claimed),
                p50_95(r.alone_ready_to_started),
            ]
            for r in self.rounds
        ]
        headers = [
            "driver",
            "workers x threads",
            "burst: task->claimed",
            "burst: ready->started",
            "alone: run ms",
            "alone: task->claimed",
            "alone: ready->started",
        ]
        print(table(headers, rows))
        print(
            "(ms, p50 / p95 over every node. task->claimed: NodeTask.created (made ready and "
            "enqueued, in the coordinator's transaction) to started_at (claimed by a worker "
            "thread): the broker plus the wait for a free thread. ready->started: the node's "
            "last predecessor's node_finished (run_started for the input) to its "
            "node_started, which an llm node emits once it holds a model slot: the whole "
            "scheduling path including the wait for the cap. alone: "
            f"{args.alone} runs one at a time, nothing queued; its run ms against "
            f"{2 * args.delay * 1000:.0f} ms of model time on the critical path)"
        )
        print()
        rows = [
            [
                r.driver,
                r.workers,
                r.cpu.get("procs", float("nan")),
                r.cpu.get("postgres", float("nan")),
                r.cpu.get("redis", float("nan")),
                f"{r.cpu.get('busy', float('nan')) * 100:.0f}%",
                r.max_connections,
                *(
                    r.pg_samples[name] / max(1, r.pg_samples["samples"])
                    for name in ("active", "advisory", "row", "idle_tx")
                ),
            ]
            for r in self.rounds
        ]
        headers = [
            "driver",
            "workers x threads",
            "driver CPU s",
            "postgres CPU s",
            "redis CPU s",
            "machine busy",
            "max PG conns",
            "PG active",
            "PG wait advisory",
            "PG wait row lock",
            "PG idle in tx",
        ]
        print(table(headers, rows))
        print(
            f"(CPU seconds during the burst: the worker processes (or the in-process child), "
            f"our database's PostgreSQL backends, the Redis server (shared with other "
            f"sessions); machine busy: all {os.cpu_count()} cores, every session included. "
            "PG columns: mean number of our database's backends, sampled every 0.1 s, running "
            "a statement, waiting on an advisory lock (a slot scope's, webapp.execution.slots), "
            "waiting on a row lock (a run's row in a coordinator step, a task's), idle in a "
            f"transaction. TCP listen overflows during the benchmark, host-wide: {overflows})"
        )
        print()
        celery = [r for r in self.rounds if r.phases]
        if celery:
            rows = []
            for r in celery:
                threads = int(r.workers.split(" x ")[0]) * args.concurrency
                busy = sum(r.phases.values()) / r.wall
                rows.append(
                    [r.driver, r.workers, threads, busy,
                     r.phases["before"] / r.wall, r.phases["node"] / r.wall,
                     r.phases["after"] / r.wall, r.in_flight]
                )  # fmt: skip
            headers = [
                "driver",
                "workers x threads",
                "threads",
                "busy on nodes",
                "claimed->started",
                "started->finished",
                "finished->closed",
                "calls in flight",
            ]
            print(table(headers, rows))
            print(
                "(mean worker threads in each phase of a node task over the burst's wall time: "
                "claimed->started: loading the task and, for an llm node, waiting for its "
                "model slot; started->finished: the node itself; finished->closed: storing "
                "its cache entry and the coordinator's finish step up to the task's close. "
                "begin_run tasks and the idle rest of the threads are not counted)"
            )
            print()
        for r in self.rounds:
            if r.capped and r.max_in_flight > args.cap:
                r.problems.append(f"{r.max_in_flight} model calls at once, over the cap")
        targets = self.targets(limit_runs)
        print(table(["target (issue 18, 2)", "measured", "verdict"], targets))
        print(
            "(CPU per run: the worker processes' CPU seconds over the burst's runs; x limit: "
            f"runs/s over the cap-bound {limit_runs:.2f} runs/s; alone: 1 worker, nothing queued)"
        )
        print()
        ok = all(not r.problems for r in self.rounds) and all(t[2] == "PASS" for t in targets)
        checks = [
            [f"{r.driver} {r.workers}: all succeeded, {CALLS_PER_RUN} calls/run, logs 1..N",
             ("ok" if not r.problems else "; ".join(r.problems))
             + (f" ({r.takeovers} lease takeovers)" if r.takeovers else "")
             + f"; at most {r.max_in_flight} calls at once"
             + (f" (cap {args.cap})" if r.capped else ""),
             verdict(not r.problems)]
            for r in self.rounds
        ]  # fmt: skip
        print(table(["check", "result", "verdict"], checks))
        return ok

    def targets(self, limit_runs: float) -> list[list[str]]:
        """Issue 18's target 2, measured on the celery rounds: [what, measured, verdict]."""
        rows = []
        celery = [r for r in self.rounds if r.driver == "celery"]
        for r in celery:
            per_run = r.cpu.get("procs", float("nan")) / max(1, r.runs)
            rows.append(
                [f"{r.workers}: worker CPU per run <= 0.100 s", f"{per_run:.3f} s",
                 verdict(per_run <= 0.1)]
            )  # fmt: skip
        two = next((r for r in celery if r.workers.startswith("2 x")), None)
        if two is not None:
            ratio = two.runs_per_s / limit_runs
            rows.append(
                ["2 workers: >= 0.80x the cap-bound limit", f"{ratio:.2f}x", verdict(ratio >= 0.8)]
            )
        one = next((r for r in celery if r.workers.startswith("1 x")), None)
        if one is not None and one.alone_ready_to_started:
            p50 = pct(one.alone_ready_to_started, 50)
            rows.append(["alone: ready->started p50 < 15 ms", f"{p50:.1f} ms", verdict(p50 < 15)])
        return rows

    def summary(self) -> str:
        celery = [r for r in self.rounds if r.driver == "celery"]
        capped = next((r for r in self.rounds if "provider cap " in r.workers), None)
        parts = []
        if len(celery) > 1:
            ratios = ", ".join(
                f"{r.workers.split(' x ')[0]} workers {r.runs_per_s / celery[0].runs_per_s:.2f}x"
                for r in celery[1:]
            )
            parts.append(f"runs/s against 1 worker: {ratios}")
        if celery and capped is not None:
            best = max(celery, key=lambda r: r.runs_per_s)
            parts.append(
                f"best celery ({best.workers}) against in-process with the same cap: "
                f"{best.runs_per_s / capped.runs_per_s:.2f}x"
            )
        return "; ".join(parts)


def run(args: argparse.Namespace) -> int:
    bench = Bench(args)
    try:
        bench.setup()
        overflows = listen_overflows()
        ceiling = bench.model_ceiling()
        for count in args.workers:
            print(f"celery, {count} worker(s) x {args.concurrency} threads ...", flush=True)
            bench.rounds.append(bench.celery_round(count))
            r = bench.rounds[-1]
            print(f"  {r.wall:.1f} s, {r.runs_per_s:.2f} runs/s", flush=True)
        if args.inprocess:
            for capped in (name == "capped" for name in args.inprocess_rounds):
                print(f"in-process, {'capped' if capped else 'no cap'} ...", flush=True)
                bench.rounds.append(bench.inprocess_round(capped))
                r = bench.rounds[-1]
                writes = r.log_writes.get("log writes", 0)
                events = r.log_writes.get("events written", 0)
                print(
                    f"  {r.wall:.1f} s, {r.runs_per_s:.2f} runs/s, CPU {r.cpu['procs']:.1f} s; "
                    f"{writes:.0f} event log writes of {events / max(1, writes):.1f} events",
                    flush=True,
                )
        overflows = listen_overflows() - overflows
        return 0 if bench.report(ceiling, overflows) else 1
    finally:
        bench.teardown()


# Child processes -----------------------------------------------------------------------


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds of each of this process's threads so far, by "name tid"."""
    # Python 3.11 does not name its OS threads: take the names from threading.
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    found = {}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            name = names.get(int(task.name)) or (task / "comm").read_text().strip()
            found[f"{name} {task.name}"] = proc_cpu_s(0, str(task / "stat"))
    return found


def count_writes(profiler: Any) -> dict[str, float]:
    """Counts, from now on, of the event log's writes (transactions) and events written
    (webapp.runs.eventlog's store and append, whichever the tree's sink calls), each write
    profiled by `profiler` when given (the sink's writes are on one thread of their own)."""
    from webapp.runs import eventlog

    counts = {"log writes": 0.0, "events written": 0.0}
    for name in ("store", "append"):
        original = getattr(eventlog, name, None)
        if original is None:
            continue

        def counted(run_id: int, events: Any, *args: Any, _original=original, **kw: Any) -> Any:
            events = list(events)
            counts["log writes"] += 1
            counts["events written"] += len(events)
            if profiler is None:
                return _original(run_id, events, *args, **kw)
            profiler.enable()
            try:
                return _original(run_id, events, *args, **kw)
            finally:
                profiler.disable()

        setattr(eventlog, name, counted)
    return counts


def child_inprocess(plan_path: str, profile: str | None = None) -> None:
    """The in-process driver in a process of its own: warm-up, alone, then the burst.

    Prints "burst" just before the burst and then one line of JSON with its start time.
    With `profile` (a path without suffix), the burst runs under cProfile (the event
    loop's thread only) and the threads' CPU seconds are written next to it.
    """
    import cProfile

    import django

    django.setup()
    import webapp.execution.inprocess as drivers

    plan = json.loads(Path(plan_path).read_text())

    async def main() -> dict[str, Any]:
        driver = drivers.InProcessDriver()
        for run_id in plan["warm"]:
            driver.start(run_id)
        await driver.wait_idle()
        for run_id in plan["alone"]:
            driver.start(run_id)
            await driver.wait_idle()
        print("burst", flush=True)
        profiler = cProfile.Profile() if profile else None
        writes_profiler = cProfile.Profile() if profile else None
        writes = count_writes(writes_profiler)
        threads0 = thread_cpu_s()
        if profiler is not None:
            profiler.enable()
        t0 = time.time()
        for run_id in plan["burst"]:
            driver.start(run_id)
        await driver.wait_idle()
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(f"{profile}.prof")
            assert writes_profiler is not None
            writes_profiler.dump_stats(f"{profile}.writes.prof")
            spent: dict[str, float] = {
                name: round(cpu - threads0.get(name, 0.0), 2)
                for name, cpu in thread_cpu_s().items()
            }
            Path(f"{profile}.threads.json").write_text(
                json.dumps(dict(sorted(spent.items(), key=lambda kv: -kv[1])), indent=1)
            )
        return {"t0": t0, **writes}

    print(json.dumps(asyncio.run(main())), flush=True)


def child_probe(url: str, concurrency: int, calls: int, delay: float) -> None:
    """`calls` streamed Messages API calls through the SDK, `concurrency` at a time."""
    import anthropic

    async def main() -> float:
        client = anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0)
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                stream = await client.messages.create(
                    model="claude-sonnet-4-6",
                    max_tokens=64,
                    messages=[{"role": "user", "content": f"probe {i} #fake:delay={delay}"}],
                    stream=True,
                )
                async with stream:
                    async for _ in stream:
                        pass

        await one(-1)  # the connection pool, the SDK's imports
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(calls)))
        return time.perf_counter() - started

    wall = asyncio.run(main())
    print(json.dumps({"calls": calls, "concurrency": concurrency, "calls_per_s": calls / wall}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs submitted at once")
    parser.add_argument(
        "--workers",
        type=lambda s: [] if s in ("", "none") else [int(n) for n in s.split(",")],
        default=[1, 2, 4],
        help="worker process counts, comma-separated ('none': no celery round)",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="threads per worker")
    parser.add_argument("--cap", type=int, default=16, help="SWITCHYARD_ANTHROPIC_CONCURRENCY")
    parser.add_argument("--delay", type=float, default=0.3, help="seconds per model call")
    parser.add_argument("--alone", type=int, default=3, help="runs timed one at a time")
    parser.add_argument("--keep-logs", action="store_true", help="keep the workers' logs")
    parser.add_argument(
        "--no-inprocess", dest="inprocess", action="store_false", help="celery rounds only"
    )
    parser.add_argument(
        "--inprocess-rounds",
        type=lambda s: [name for name in s.split(",") if name],
        default=["nocap", "capped"],
        help="in-process rounds, comma-separated: nocap (no provider cap), capped (--cap)",
    )
    parser.add_argument("--profile", metavar="DIR", help="cProfile the in-process burst into DIR")
    parser.add_argument("--child-inprocess", metavar="PLAN", help=argparse.SUPPRESS)
    parser.add_argument("--child-probe", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--probe-concurrency", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--probe-calls", type=int, default=256, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if unknown := set(args.inprocess_rounds) - {"nocap", "capped"}:
        parser.error(f"--inprocess-rounds: unknown {', '.join(sorted(unknown))}")
    if args.child_inprocess:
        child_inprocess(args.child_inprocess, args.profile)
        return
    if args.child_probe:
        child_probe(args.child_probe, args.probe_concurrency, args.probe_calls, args.delay)
        return
    sys.exit(run(args))


if __name__ == "__main__":
    main()
