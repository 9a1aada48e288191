"""The event log prices what it records, and recover_runs closes runs a stopped server left open."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command

from webapp import execution
from webapp.execution import plans
from webapp.execution.inprocess import Sink
from webapp.execution.management.commands.recover_runs import INTERRUPTED
from webapp.flows import services
from webapp.runs import eventlog
from webapp.runs.eventlog import write_batch
from webapp.runs.models import Run, RunEvent

EXAMPLES = Path(__file__).parents[2] / "examples"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "logs"
# Dollars per million tokens for the offline model, which costs nothing by default.
PRICES = {"offline": {"input": 3.0, "output": 15.0}, "claude-x": {"input": 1.0, "output": 5.0}}


@pytest.fixture(autouse=True)
def offline(monkeypatch, settings):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("SWITCHYARD_OFFLINE_DELAY_MS", raising=False)
    settings.MODEL_PRICES = PRICES
    plans.engine_services.cache_clear()
    yield
    plans.engine_services.cache_clear()


def dollars(usage: dict, price: dict) -> Decimal:
    total = price["input"] * usage["input_tokens"] + price["output"] * usage["output_tokens"]
    return Decimal(str(total / 1_000_000)).quantize(Decimal("0.000001"))


def new_run(owner, example: str = "chain", inputs: dict | None = None) -> Run:
    document = json.loads((EXAMPLES / f"{example}.json").read_text())
    flow = services.create(owner, example, document)
    return Run.objects.create(
        flow=flow, flow_version=flow.current(), started_by=owner, inputs=inputs or {}
    )


def payloads(run: Run, kind: str) -> list[dict]:
    return list(RunEvent.objects.filter(run=run, type=kind).values_list("payload", flat=True))


@pytest.mark.django_db(transaction=True)
async def test_a_run_records_each_nodes_cost_and_the_runs_totals(alice):
    run = await sync_to_async(new_run)(alice, "chain")
    execution.start(run.pk)
    await execution.driver().wait_idle()
    await run.arefresh_from_db()
    assert run.status == "succeeded"

    finished = await sync_to_async(payloads)(run, "node_finished")
    priced = [e for e in finished if "model" in e]
    assert [e["node"] for e in priced] == ["draft", "critique", "revise"]
    node_costs = [dollars(e["usage"], PRICES["offline"]) for e in priced]
    assert all(cost > 0 for cost in node_costs)
    assert [Decimal(str(e["cost_usd"])) for e in priced] == node_costs
    assert all("cost_usd" not in e for e in finished if "model" not in e)

    assert run.cost_usd == sum(node_costs)
    assert run.saved_usd == 0 and run.cache_hits == 0
    last = (await sync_to_async(payloads)(run, "run_finished"))[0]
    assert Decimal(str(last["cost_usd"])) == run.cost_usd
    expected = (run.finished_at - run.started_at).total_seconds()
    assert run.duration_s == pytest.approx(expected, abs=1e-3) and run.duration_s > 0


@pytest.mark.django_db(transaction=True)
async def test_cache_hits_record_their_saving_and_usage_by_model_prices_the_run(alice):
    """Events as the engine emits a cache hit and a run that reports usage by model."""
    run = await sync_to_async(new_run)(alice)
    used = {"input_tokens": 2000, "output_tokens": 400}
    saved = {"input_tokens": 1000, "output_tokens": 100}
    recorder = Sink(run.pk)
    events = [
        {"type": "run_started", "ts": 1000.0, "schema": 1},
        {"type": "node_finished", "node": "draft", "model": "claude-x", "usage": used},
        {
            "type": "node_finished",
            "node": "critique",
            "model": "claude-x",
            "usage": {"input_tokens": 0, "output_tokens": 0},
            "cached": {"source": "run 1", "usage": saved},
        },
        {"type": "node_finished", "node": "revise", "model": "gpt-unknown", "usage": used},
        {
            "type": "run_finished",
            "ts": 1004.25,
            "status": "succeeded",
            "usage": used,
            # A map item's call no node event shows; the unpriced model counts nothing.
            "usage_by_model": {"claude-x": {**used, "output_tokens": 1400}, "gpt-unknown": used},
        },
    ]
    for seq, event in enumerate(events, start=1):
        recorder({"seq": seq, "ts": 1000.0, **event})
    await recorder.close()

    events = await sync_to_async(payloads)(run, "node_finished")
    draft, critique, revise = events
    assert draft["cost_usd"] == pytest.approx(0.004) and "saved_usd" not in draft
    assert critique["cost_usd"] == 0 and critique["saved_usd"] == pytest.approx(0.0015)
    assert revise["cost_usd"] is None  # unpriced, not free

    await run.arefresh_from_db()
    assert run.cost_usd == Decimal("0.009")  # 2000 x $1 + 1400 x $5 per million
    assert run.saved_usd == Decimal("0.0015")
    assert run.cache_hits == 1
    assert run.duration_s == pytest.approx(4.25)


# recover_runs


def open_run(owner, status: str, events: list[dict]) -> Run:
    run = new_run(owner)
    Run.objects.filter(pk=run.pk).update(status=status)
    if events:
        numbered = [{"seq": i, "ts": 500.0 + i, **e} for i, e in enumerate(events, start=1)]
        write_batch(run.pk, numbered)
    run.refresh_from_db()
    return run


def test_recover_runs_fails_interrupted_runs_and_closes_their_event_log(alice, settings):
    usage = {"input_tokens": 1000, "output_tokens": 200}
    running = open_run(
        alice,
        "queued",  # write_batch moves it to running on run_started
        [
            {"type": "run_started", "inputs": {}},
            {"type": "node_started", "node": "topic", "iteration": 1},
            {"type": "node_finished", "node": "topic", "iteration": 1, "output": {}},
            {"type": "node_started", "node": "draft", "iteration": 1},
            {"type": "node_finished", "node": "draft", "iteration": 1, "model": "offline"}
            | {"usage": usage},
            {"type": "node_started", "node": "critique", "iteration": 1},
            {"type": "node_delta", "node": "critique", "iteration": 1, "text": "half"},
        ],
    )
    assert running.status == "running" and running.last_seq == 7
    queued = open_run(alice, "queued", [])
    done = open_run(alice, "succeeded", [])

    out = io.StringIO()
    call_command("recover_runs", stdout=out)
    assert out.getvalue() == f"marked 2 interrupted run(s) failed: {running.pk}, {queued.pk}\n"

    running.refresh_from_db()
    assert running.status == "failed" and running.error == INTERRUPTED
    assert running in Run.objects.filter(status__in=Run.RESUMABLE)
    tail = list(RunEvent.objects.filter(run=running, seq__gt=7).values_list("payload", flat=True))
    assert [(e["seq"], e["type"], e.get("node")) for e in tail] == [
        (8, "node_failed", "critique"),
        (9, "run_finished", None),
    ]
    assert tail[0]["error"] == INTERRUPTED
    assert tail[1]["status"] == "failed" and tail[1]["error"] == INTERRUPTED
    assert tail[1]["usage"] == usage and tail[1]["usage_by_model"] == {"offline": usage}
    # Stamped with the last event's time: downtime is not part of the run.
    assert tail[1]["ts"] == 507.0 and running.duration_s == pytest.approx(6.0)
    assert running.last_seq == 9 and running.finished_at.timestamp() == 507.0
    assert (running.input_tokens, running.output_tokens) == (1000, 200)
    assert running.cost_usd == dollars(usage, PRICES["offline"])

    queued.refresh_from_db()
    assert queued.status == "failed" and queued.error == INTERRUPTED
    only = RunEvent.objects.get(run=queued)
    assert (only.seq, only.type, only.payload["status"]) == (1, "run_finished", "failed")
    assert queued.last_seq == 1

    done.refresh_from_db()
    assert done.status == "succeeded" and not RunEvent.objects.filter(run=done).exists()


def test_recover_runs_leaves_a_clean_database_alone(alice):
    run = open_run(alice, "queued", [])
    call_command("recover_runs", stdout=io.StringIO())
    before = list(RunEvent.objects.values_list("run", "seq"))
    out = io.StringIO()
    call_command("recover_runs", stdout=out)
    assert out.getvalue() == ""
    assert list(RunEvent.objects.values_list("run", "seq")) == before
    run.refresh_from_db()
    assert run.last_seq == 1


def test_recover_runs_closes_the_golden_interrupted_log_as_it_was_recorded(alice, settings):
    # tests/fixtures/logs/interrupted.json was closed by this command: it still closes alike.
    from tests.fixtures.logs.record import PRICES

    golden = json.loads((FIXTURES / "interrupted.json").read_text())["events"]
    closing = [e for e in golden if e.get("error") == INTERRUPTED]
    settings.MODEL_PRICES = PRICES
    run = new_run(alice)
    write_batch(run.pk, golden[: -len(closing)])
    call_command("recover_runs", stdout=io.StringIO())
    rows = RunEvent.objects.filter(run=run, seq__gt=len(golden) - len(closing)).order_by("seq")
    assert list(rows.values_list("payload", flat=True)) == closing


@pytest.mark.django_db(transaction=True)
def test_a_stored_batch_reads_back_as_recorded_and_its_message_carries_the_same_events(alice):
    run = new_run(alice)
    events = [
        {"type": "run_started", "ts": 100.0, "inputs": {"q": "é ✓ \u2028"}},
        {"type": "node_delta", "ts": 100.5, "node": "a", "iteration": 1, "text": 'say "hi"\n'},
        {"type": "node_finished", "ts": 101.0, "node": "a", "iteration": 1, "output": {}},
    ]
    message, tripped = eventlog.store(run.pk, events)
    assert not tripped
    stored = list(RunEvent.objects.filter(run=run).order_by("seq"))
    assert [(e.seq, e.type) for e in stored] == [
        (1, "run_started"),
        (2, "node_delta"),
        (3, "node_finished"),
    ]
    assert [e.payload for e in stored] == [{**e, "seq": n} for n, e in enumerate(events, 1)]
    assert stored[0].payload["inputs"]["q"] == "é ✓ \u2028"
    # What the sockets forward as one frame is the stored events, in order.
    assert (message["type"], message["first"], message["last"]) == ("run.events", 1, 3)
    assert json.loads(message["text"]) == {"events": [e.payload for e in stored]}
    run.refresh_from_db()
    assert (run.last_seq, run.status) == (3, Run.Status.RUNNING)
    assert run.event_bytes == sum(len(json.dumps(e.payload)) for e in stored)
    # The next batch numbers on; nothing stored, nothing to send.
    message, _ = eventlog.store(
        run.pk, [{"type": "node_delta", "node": "a", "iteration": 1, "text": "x"}]
    )
    assert (message["first"], message["last"]) == (4, 4)
    assert eventlog.store(run.pk, []) == (None, False)
