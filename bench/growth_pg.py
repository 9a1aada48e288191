"""Growth on PostgreSQL: the history page, the run page and replay with 10,000 runs and
1,000,000 events, each request against the same request on a tenth of the work, in one run.

    .venv/bin/python bench/growth_pg.py                  # 10,000 runs, ~1,000,000 events
    .venv/bin/python bench/growth_pg.py --events 200000  # a quicker look

Sets Django up in this process on a PostgreSQL database of its own (127.0.0.1:5432, user
``postgres``, dropped at the end), with the production settings (DEBUG off; requests are
made as HTTPS). One database holds everything: a user with 10,000 runs and one with 1,000
(and 2,200 runs of others, which must stay invisible), a run of 100,000 events and one of
1,000, and 1,000-event runs up to ``--events`` (default 1,000,000) in all. Events are loaded
with ``COPY``: ``node_started``, ``node_delta`` and ``node_finished`` of 20 ``llm`` nodes
taking turns, as a long streamed run records them, after a first node, ``probe``, whose 50
events are the same in every run (the inspector's subject).

Each row times a request on the large subject and on the small one, alternately, so a busy
machine weighs on both alike: the history pages (10,000 runs against 1,000, as
bench/history_list.py asks them), the run page, its timeline and the ``probe`` node's
inspector (also as of a replay position, ``?upto=``) of the 100,000-event run against the
1,000-event one, a page of 1,000 events from the events API, and the last page of the long
run as the replay player asks for it (5,000 events) against its first. ``x small`` is the
ratio; **flat** means within ``FLAT`` for the requests whose work does not depend on the
size (a page of 50 rows, a page of events, one node's events). The timeline draws every
node's bars, so it reads its run's events: shown, not held flat. Appending a batch of 50
events through the one writer is shown too. Medians of ``--reps`` requests after one warm-up;
floor: a ``SELECT 1`` round trip. EXPLAIN of the key statements is printed last.

Exit status 1 if a row held to flat is not: a benchmark's own floor, not a test.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.fernet import Fernet

from bench._live import machine_line, table, verdict
from bench.history_list import populate

ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
FLAT = 2.0
NODES = [f"llm{i}" for i in range(20)]
PROBE_EVENTS = 50
PAGE = 5000  # what the replay player asks for (webapp.runs.replay.MAX_EVENTS)
COPY = "COPY runs_runevent (run_id, seq, type, node, payload) FROM STDIN"


def setup_django(database: str) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="webapp.settings",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{database}",
        DEBUG="0",
        SECRET_KEY="growth-pg-bench-throwaway-key-" + "x" * 40,
        ALLOWED_HOSTS="testserver",
        # Without DEBUG the app refuses to start with no key; nothing is encrypted here.
        SWITCHYARD_CREDENTIAL_KEYS=Fernet.generate_key().decode(),
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)


def graph_doc() -> dict[str, Any]:
    nodes = [{"id": "q", "type": "input", "config": {"name": "q"}}]
    nodes += [
        {"id": n, "type": "llm", "config": {"prompt": "Say {{ q }}", "model": "claude-haiku-4-5"}}
        for n in ["probe"]
    ]
    nodes += [
        {"id": n, "type": "llm", "config": {"prompt": "Say {{ q }}", "model": "claude-haiku-4-5"}}
        for n in NODES
    ]
    nodes.append({"id": "o", "type": "output", "config": {"name": "a"}})
    edges = [
        {"source": "q", "target": n, "source_port": "value", "target_port": "q"}
        for n in ["probe", *NODES]
    ]
    edges.append({"source": NODES[0], "target": "o", "source_port": "text", "target_port": "value"})
    return {"graph": {"name": "long run"}, "nodes": nodes, "edges": edges}


def event_rows(run_id: int, count: int, start_ts: float) -> io.StringIO:
    """``count`` events of a long streamed run, as COPY rows (run_id, seq, type, node, payload):
    ``probe``'s one visit of PROBE_EVENTS events, then the 20 nodes' visits in turn."""
    out = io.StringIO()
    state = {"seq": 0, "ts": start_ts}
    visits: dict[str, int] = {}

    def row(event: dict[str, Any], step: float = 0.01) -> None:
        state["seq"] += 1
        state["ts"] += step
        payload = {"seq": state["seq"], "ts": state["ts"], **event}
        text = json.dumps(payload).replace("\\", "\\\\")
        node = event.get("node", "")
        out.write(f"{run_id}\t{state['seq']}\t{event['type']}\t{node}\t{text}\n")

    def visit(node: str, events: int) -> None:
        visits[node] = iteration = visits.get(node, 0) + 1
        at = {"node": node, "iteration": iteration}
        row({"type": "node_started", **at, "inputs": {"q": "hello"}})
        for _ in range(events - 2):
            row({"type": "node_delta", **at, "text": "some streamed words "}, 0.05)
        usage = {"input_tokens": 40, "output_tokens": 300}
        row(
            {
                "type": "node_finished",
                **at,
                "output": {"text": "an answer"},
                "usage": usage,
                "model": "claude-haiku-4-5",
                "cost_usd": 0.0015,
            }
        )

    row({"type": "run_started", "inputs": {"q": "hello"}})
    visit("probe", PROBE_EVENTS)
    per_visit = max(3, (count - PROBE_EVENTS - 2) // (len(NODES) * 4))
    turn = 0
    while (left := count - 1 - state["seq"]) >= 3:
        visit(NODES[turn % len(NODES)], min(per_visit, left))
        turn += 1
    while state["seq"] < count - 1:
        row({"type": "node_delta", "node": NODES[0], "iteration": 1, "text": "late "})
    row({"type": "run_finished", "status": "succeeded", "outputs": {}})
    out.seek(0)
    return out


def copy_events(chunks: Iterable[str]) -> None:
    """COPY rows of event_rows() into the events table, as fast as PostgreSQL loads."""
    from django.db import connection

    with connection.cursor() as cursor, cursor.connection.cursor().copy(COPY) as copy:
        for chunk in chunks:
            copy.write(chunk)


def long_run(flow, user, count: int) -> int:
    """A finished run of ``flow`` holding ``count`` events, loaded with COPY."""
    import datetime as dt

    from webapp.runs.models import Run

    now = dt.datetime.now(dt.UTC)
    run = Run.objects.create(
        flow=flow,
        flow_version=flow.current(),
        started_by=user,
        inputs={"q": "hello"},
        status="succeeded",
        started_at=now,
        finished_at=now + dt.timedelta(seconds=count / 20),
        duration_s=count / 20,
    )
    copy_events([event_rows(run.pk, count, now.timestamp()).getvalue()])
    Run.objects.filter(pk=run.pk).update(last_seq=count)
    return run.pk


def append_pair(large: int, small: int, reps: int) -> dict[str, Any]:
    """Medians (ms) of appending 50 events to each run through the one writer, alternately."""
    from webapp.runs import eventlog

    times: dict[str, list[float]] = {"large": [], "small": []}
    for rep in range(reps + 1):
        for side, run_id in (("large", large), ("small", small)):
            batch = [
                {"type": "node_delta", "ts": time.time(), "node": NODES[0], "text": "more "}
                for _ in range(50)
            ]
            started = time.perf_counter()
            eventlog.append(run_id, batch, limited=False)
            if rep:
                times[side].append((time.perf_counter() - started) * 1000)
    return {side: statistics.median(values) for side, values in times.items()}


def select_one_ms(reps: int) -> float:
    from django.db import connection

    times = []
    for _ in range(reps + 1):
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchall()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times[1:])


def build(runs: int, events: int) -> dict[str, Any]:
    """Both users, their runs, the long runs and the filler events; ANALYZEd."""
    from django.db import connection

    from webapp.flows import services
    from webapp.runs.models import Run, RunEvent

    began = time.perf_counter()
    big = populate(runs, runs // 5)
    small = populate(runs // 10, runs // 50, name="small", other="someone else")
    long_flow = services.create(big["user"], "long runs", graph_doc())
    short_flow = services.create(small["user"], "long runs", graph_doc())
    subjects = {
        "big": big,
        "small": small,
        "long run": long_run(long_flow, big["user"], 100_000),
        "short run": long_run(short_flow, small["user"], 1_000),
    }
    per_run = 1_000
    needed = max(0, (events - RunEvent.objects.count()) // per_run)
    filler = list(
        Run.objects.filter(last_seq=0).order_by("pk").values_list("pk", flat=True)[:needed]
    )
    copy_events(event_rows(run_id, per_run, time.time()).getvalue() for run_id in filler)
    Run.objects.filter(pk__in=filler).update(last_seq=per_run)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"{Run.objects.count():,} runs in all, {RunEvent.objects.count():,} events; "
        f"built in {time.perf_counter() - began:.1f} s"
    )
    return subjects


def measure(subjects: dict[str, Any], reps: int) -> list[tuple[str, bool, dict[str, Any]]]:
    """Each row: (label, held flat?, figures of timed_pair)."""
    from django.test import Client

    from webapp.runs.history_views import PAGE_SIZE

    big, small = Client(), Client()
    big.force_login(subjects["big"]["user"])
    small.force_login(subjects["small"]["user"])
    rows = []

    bflow, sflow = subjects["big"]["flows"][0].pk, subjects["small"]["flows"][0].pk
    middle = 10_000 // PAGE_SIZE // 2
    history = [
        ("history: page 1", "/runs/", "/runs/"),
        ("history: middle page", f"/runs/?page={middle}", f"/runs/?page={middle // 10}"),
        (
            "history: failed of one flow",
            f"/runs/?status=failed&flow={bflow}",
            f"/runs/?status=failed&flow={sflow}",
        ),
        (
            "history: a flow's page 5",
            f"/flows/{bflow}/runs/?status=succeeded&page=5",
            f"/flows/{sflow}/runs/?status=succeeded&page=5",
        ),
    ]
    for label, large_url, small_url in history:
        rows.append((label, True, timed_pair(big, large_url, small, small_url, reps)))
    long_run_id, short_run_id = subjects["long run"], subjects["short run"]
    pages = [
        ("run page", True, "/runs/{}/"),
        ("timeline", False, "/runs/{}/timeline/"),
        ("inspector (probe node)", True, "/runs/{}/nodes/probe/"),
        ("inspector as of a replay position", True, "/runs/{}/nodes/probe/?upto=500"),
        ("events API, 1,000 events", True, "/api/runs/{}/events?limit=1000"),
    ]
    for label, held, url in pages:
        pair = timed_pair(big, url.format(long_run_id), small, url.format(short_run_id), reps)
        rows.append((f"{label}: 100,000 vs 1,000 events", held, pair))
    events = f"/api/runs/{long_run_id}/events?limit={PAGE}"
    last = timed_pair(big, f"{events}&after={100_000 - PAGE}", big, events, reps)
    rows.append(("events API, last page vs first, 100,000 events", True, last))
    rows.append(("append 50 events", False, append_pair(long_run_id, short_run_id, reps)))
    return rows


def timed_pair(big, large_url: str, small, small_url: str, reps: int) -> dict[str, Any]:
    """Medians (ms) of GET ``large_url`` as ``big`` and GET ``small_url`` as ``small``, taken
    alternately after a warm-up of each, with the warm-up's query count and size."""
    from django.db import connection

    figures: dict[str, Any] = {"large": [], "small": []}
    sides = (("large", big, large_url), ("small", small, small_url))
    for side, client, url in sides:
        queries: list[str] = []

        def count(execute, sql, params, many, context, queries=queries):
            queries.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            response = client.get(url, secure=True)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code}")
        figures[f"{side} queries"] = len(queries)
        figures[f"{side} bytes"] = len(response.content)
    for _ in range(reps):
        for side, client, url in sides:
            started = time.perf_counter()
            response = client.get(url, secure=True)
            figures[side].append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, url
    figures["large"] = statistics.median(figures["large"])
    figures["small"] = statistics.median(figures["small"])
    return figures


def explain(run_id: int) -> list[str]:
    """EXPLAIN of the statements that must not grow with the table."""
    from django.db import connection

    from webapp.runs.models import RunEvent

    statements = {
        "events page after a seq": RunEvent.objects.filter(run_id=run_id, seq__gt=100_000 - PAGE)
        .order_by("seq")
        .values_list("payload", flat=True)[:PAGE],
        "a node's events": RunEvent.objects.filter(run_id=run_id)
        .of_node("probe")
        .order_by("seq")
        .values_list("payload", flat=True),
    }
    lines = []
    for label, query in statements.items():
        sql, params = query.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = " | ".join(row[0].strip() for row in cursor.fetchall()[:4])
        lines.append(f"  {label}: {plan}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    print(machine_line())
    import psycopg

    database = f"switchyard_growth_{os.getpid()}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        setup_django(database)
        subjects = build(args.runs, args.events)
        floor = select_one_ms(args.reps)
        rows = measure(subjects, args.reps)
        passed = report(rows, floor, args)
        print("EXPLAIN (PostgreSQL):")
        print("\n".join(explain(subjects["long run"])))
        print(f"result: {verdict(passed)}")
        return 0 if passed else 1
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def report(rows: list[tuple[str, bool, dict[str, Any]]], floor: float, args) -> bool:
    """One table: each request on the large and the small subject, and the ratio."""
    lines = []
    passed = True
    for label, held, figures in rows:
        ratio = figures["large"] / figures["small"]
        ok = not held or ratio <= FLAT
        passed &= ok
        lines.append(
            [
                label,
                f"{figures['small']:.1f}",
                f"{figures['large']:.1f}",
                f"{ratio:.2f}x",
                figures.get("large queries", "-"),
                f"{figures['large bytes'] / 1024:.0f}" if "large bytes" in figures else "-",
                f"{figures['large'] / floor:.0f}x",
                verdict(ok) if held else "info",
            ]
        )
    print(
        f"large: {args.runs:,} visible runs, a run of 100,000 events, about {args.events:,} "
        f"events in all; small: {args.runs // 10:,} runs, a run of 1,000 events. Median of "
        f"{args.reps}, alternating; floor SELECT 1: {floor:.2f} ms."
    )
    print(
        table(
            ["request", "small ms", "large ms", "x small", "queries", "KB", "x SELECT 1", "flat"],
            lines,
        )
    )
    return passed


if __name__ == "__main__":
    raise SystemExit(main())
