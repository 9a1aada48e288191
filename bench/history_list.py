"""History list: time to render a page of a 10,000-run history, through Django, logged in.

    .venv/bin/python bench/history_list.py [--runs 10000] [--others 2000] [--reps 15]

Sets Django up in this process on a fresh SQLite file in a temporary directory (migrated
here, deleted at the end), with the production settings (DEBUG off, so requests are made
as HTTPS), and bulk-creates RUNS runs over 5 flows of the benchmark user plus OTHERS runs
of another user's flows (which the benchmark user must not see, so the visibility filter
has something to filter). Statuses, kinds (run, re-run, from node, resume with a parent),
tokens, costs and creation times (spread over 30 days) are mixed. Then, as the logged-in
user through django.test.Client (every middleware, the session in the database, the
template), it times GET of: the first page of /runs/, a middle page, a page filtered by
status and flow, a flow's own history page, and the first page as htmx asks for it (the
rows alone). Each figure is the median of REPS requests after one warm-up request.

Floor, measured in the same run: the same page's SQL (its COUNT and its SELECT, as the
view's queryset compiles them) run on a bare cursor and fetched, with no Django model,
template or request around it. Target: every page under 300 ms. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.fernet import Fernet

from bench._live import machine_line, table, verdict

TARGET_MS = 300.0
FLOWS = 5
STATUSES = ["succeeded"] * 14 + ["failed"] * 3 + ["cancelled"] * 2 + ["running"]
KINDS = ["run"] * 7 + ["rerun", "from_node", "resume"]


def setup_django(tmp: Path) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="webapp.settings",
        DATABASE_URL=f"sqlite:///{tmp / 'history.sqlite3'}",
        DEBUG="0",
        SECRET_KEY="history-bench-throwaway-key-" + "x" * 40,
        ALLOWED_HOSTS="testserver",
        # Without DEBUG the app refuses to start with no key; nothing is encrypted here.
        SWITCHYARD_CREDENTIAL_KEYS=Fernet.generate_key().decode(),
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)


def populate(
    runs: int, others: int, seed: int = 4, *, name: str = "bench", other: str = "someone"
) -> dict[str, Any]:
    """The benchmark user, their flows and RUNS runs, and OTHERS runs nobody else sees."""
    import datetime as dt
    from decimal import Decimal

    from django.contrib.auth import get_user_model

    from webapp.flows import services
    from webapp.runs.models import Run

    rng = random.Random(seed)
    users = get_user_model().objects
    me = users.create_user(name, password="correct horse battery")
    someone = users.create_user(other, password="correct horse battery")
    doc = {
        "graph": {"name": "bench"},
        "nodes": [
            {"id": "q", "type": "input", "config": {"name": "q"}},
            {"id": "o", "type": "output", "config": {"name": "a"}},
        ],
        "edges": [{"source": "q", "target": "o", "source_port": "value", "target_port": "value"}],
    }
    mine = [services.create(me, f"bench flow {i}", doc) for i in range(FLOWS)]
    theirs = [services.create(someone, f"their flow {i}", doc) for i in range(2)]
    now = dt.datetime.now(dt.UTC)
    span = dt.timedelta(days=30).total_seconds()

    def make(flow, user, count: int) -> list[Run]:
        version = flow.current()
        made = []
        for _ in range(count):
            status = rng.choice(STATUSES)
            finished = status != "running"
            started = now - dt.timedelta(seconds=rng.uniform(0, span))
            seconds = rng.uniform(0.5, 120)
            made.append(
                Run(
                    flow=flow,
                    flow_version=version,
                    started_by=user,
                    inputs={"q": "a question " * 20},
                    outputs={"a": "an answer " * 50} if finished else {},
                    status=status,
                    created=started,
                    started_at=started,
                    finished_at=started + dt.timedelta(seconds=seconds) if finished else None,
                    duration_s=seconds if finished else None,
                    input_tokens=rng.randint(100, 20_000),
                    output_tokens=rng.randint(50, 4_000),
                    cost_usd=Decimal(rng.randint(0, 200_000)) / 1_000_000,
                    cache_hits=rng.choice([0, 0, 0, 1, 2]),
                    kind=rng.choice(KINDS),
                    from_node="o",
                )
            )
        return made

    batch = []
    for i in range(runs):
        batch += make(mine[i % FLOWS], me, 1)
    for i in range(others):
        batch += make(theirs[i % 2], someone, 1)
    created = Run._meta.get_field("created")
    # auto_now_add would stamp every row with the same instant; the history is 30 days.
    created.auto_now_add = False
    try:
        Run.objects.bulk_create(batch, batch_size=1000)
    finally:
        created.auto_now_add = True
    # Re-runs link to an earlier run of their flow.
    ids_by_flow: dict[int, list[int]] = {}
    for run_id, flow_id in Run.objects.order_by("pk").values_list("pk", "flow_id"):
        ids_by_flow.setdefault(flow_id, []).append(run_id)
    parents = []
    for run in Run.objects.exclude(kind="run").only("pk", "flow_id"):
        earlier = [i for i in ids_by_flow[run.flow_id][:50] if i != run.pk]
        run.parent_id = rng.choice(earlier)
        parents.append(run)
    Run.objects.bulk_update(parents, ["parent"], batch_size=1000)
    return {"user": me, "flows": mine}


def time_request(client, url: str, reps: int, headers: dict[str, str] | None = None):
    """(median ms, min ms, max ms, queries, rows) of GET url."""
    from django.db import connection

    queries: list[str] = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = client.get(url, headers=headers or {}, secure=True)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: {response.status_code}")
    rows = response.content.decode().count('data-run="')
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        response = client.get(url, headers=headers or {}, secure=True)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return statistics.median(times), min(times), max(times), len(queries), rows


def time_floor(user, reps: int, *, status: str = "", flow: int | None = None, page: int = 1):
    """Median ms of the page's own COUNT and SELECT on a bare cursor, fetched."""
    from django.db import connection

    from webapp.runs.history_views import PAGE_SIZE, filtered_runs

    runs = filtered_runs(user, status=status, flow=flow)
    start = (page - 1) * PAGE_SIZE
    statements = [
        runs.order_by().values("pk").query.sql_with_params(),
        runs[start : start + PAGE_SIZE].query.sql_with_params(),
    ]
    count_sql = f"SELECT COUNT(*) FROM ({statements[0][0]})"
    statements[0] = (count_sql, statements[0][1])
    times = []
    for _ in range(reps + 1):
        started = time.perf_counter()
        with connection.cursor() as cursor:
            for sql, params in statements:
                cursor.execute(sql, params)
                cursor.fetchall()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times[1:])


def query_plans(user, flow: int) -> list[str]:
    from django.db import connection

    from webapp.runs.history_views import filtered_runs

    lines = []
    for label, runs in (
        ("all runs", filtered_runs(user)),
        ("status+flow", filtered_runs(user, status="failed", flow=flow)),
    ):
        sql, params = runs[:50].query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = "; ".join(row[-1] for row in cursor.fetchall())
        lines.append(f"  {label}: {plan}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--others", type=int, default=2_000)
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    print(machine_line())
    tmp = Path(tempfile.mkdtemp(prefix="switchyard-history-"))
    try:
        setup_django(tmp)
        began = time.perf_counter()
        data = populate(args.runs, args.others)
        print(
            f"{args.runs} visible runs over {FLOWS} flows + {args.others} of another user, "
            f"created in {time.perf_counter() - began:.1f} s; median of {args.reps} requests"
        )
        measure(args, data)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(args: argparse.Namespace, data: dict[str, Any]) -> None:
    from django.test import Client

    from webapp.runs.history_views import PAGE_SIZE

    user, flow = data["user"], data["flows"][0].pk
    client = Client()
    client.force_login(user)
    middle = max(1, args.runs // PAGE_SIZE // 2)
    cases = [
        ("page 1, all runs", "/runs/", {}, {}),
        (f"page {middle}, all runs", f"/runs/?page={middle}", {}, {"page": middle}),
        (
            "page 1, failed of one flow",
            f"/runs/?status=failed&flow={flow}",
            {},
            {"status": "failed", "flow": flow},
        ),
        (
            "page 5, a flow's history",
            f"/flows/{flow}/runs/?status=succeeded&page=5",
            {},
            {"status": "succeeded", "flow": flow, "page": 5},
        ),
        ("page 1, htmx rows only", "/runs/", {"HX-Request": "true"}, {}),
    ]
    rows = []
    passed = True
    for label, url, headers, filters in cases:
        median, low, high, queries, shown = time_request(client, url, args.reps, headers)
        floor = time_floor(user, args.reps, **filters)
        ok = median < TARGET_MS
        passed &= ok
        rows.append(
            [
                label,
                shown,
                queries,
                median,
                f"{low:.1f}..{high:.1f}",
                floor,
                f"{median / floor:.1f}x",
                f"{median / TARGET_MS:.2f}",
                verdict(ok),
            ]
        )
    print(
        table(
            ["page", "rows", "queries", "ms", "min..max", "floor ms", "x floor", "/300ms", ""],
            rows,
        )
    )
    print("query plans (SQLite):")
    print("\n".join(query_plans(user, flow)))
    print(f"result: {verdict(passed)}")


if __name__ == "__main__":
    main()
