"""Limits on what runs take (webapp.runs.limits): a run's event log, a user's stored bytes,
a user's runs in flight. Real runs on the in-process driver, on the database."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from tests.scaleout.flows import echo_loop
from webapp import execution
from webapp.execution import plans
from webapp.execution.inprocess import Sink
from webapp.flows import services as flow_services
from webapp.runs import limits, services
from webapp.runs.models import Run, RunEvent, UserStorage

PROBLEM = "application/problem+json"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("SWITCHYARD_OFFLINE_DELAY_MS", raising=False)
    plans.engine_services.cache_clear()
    yield
    plans.engine_services.cache_clear()


def new_flow(owner, graph: dict | None = None):
    graph = graph or echo_loop()
    return flow_services.create(owner, graph["graph"]["name"], graph)


async def run_to_the_end(owner, text: str, graph: dict | None = None) -> Run:
    flow = await sync_to_async(new_flow)(owner, graph)
    # Started as soon as it is stored (services.create_run), on this test's loop.
    run = await sync_to_async(services.create_run)(flow, owner, {"text": text})
    await execution.driver().wait_idle()
    await run.arefresh_from_db()
    return run


@sync_to_async
def stored_log(run: Run) -> list[dict]:
    return list(RunEvent.objects.filter(run=run).order_by("seq").values_list("payload", flat=True))


def assert_closed(events: list[dict]) -> None:
    """Numbered 1..N without gaps, every node visit it opens closed, run_finished last."""
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["type"] for e in events].count("run_finished") == 1
    assert events[-1]["type"] == "run_finished"
    open_visits = set()
    for event in events:
        visit = (event.get("node"), event.get("iteration"))
        if event["type"] == "node_started":
            open_visits.add(visit)
        elif event["type"] in ("node_finished", "node_failed", "node_skipped"):
            open_visits.discard(visit)
    assert not open_visits, f"visits left open: {open_visits}"


# A run's event log


@pytest.mark.django_db(transaction=True)
async def test_a_loop_that_fills_its_event_log_fails_with_the_log_closed(alice, settings):
    settings.MAX_RUN_EVENT_BYTES = 40_000
    run = await run_to_the_end(alice, "x" * 2_000)

    assert run.status == "failed"
    assert run.error == limits.event_log_error(40_000)
    assert "40 kB" in run.error and "SWITCHYARD_MAX_RUN_EVENT_BYTES" in run.error
    assert run.outputs == {}
    events = await stored_log(run)
    assert_closed(events)
    last = events[-1]
    assert last["status"] == "failed" and last["error"] == run.error and last["outputs"] == {}
    assert run.last_seq == len(events)
    # Stopped, not run to max_iterations (60 passes would store some 800 kB).
    passes = [e for e in events if e["type"] == "node_started" and e["node"] == "a"]
    assert 1 < len(passes) < 10
    # What is counted is what is stored, and it is the cap and the closing events at most.
    sizes = sum(limits.size_of(e) for e in events)
    assert run.event_bytes == sizes
    assert sizes <= 40_000 + 2_000
    # Whatever the engine said as it stopped (node_failed: cancelled) was not stored.
    assert all(e["error"] == run.error for e in events if e["type"] == "node_failed")

    await asyncio.sleep(0.3)  # nothing more arrives once the run has finished
    assert len(await stored_log(run)) == len(events)


@pytest.mark.django_db(transaction=True)
async def test_a_run_that_fits_is_not_touched_and_its_bytes_are_counted(alice, settings):
    settings.MAX_RUN_EVENT_BYTES = 1_000_000
    run = await run_to_the_end(alice, "short", echo_loop(iterations=2))

    assert run.status == "failed"  # the loop's own end: max_iterations
    assert "max_iterations" in run.error
    events = await stored_log(run)
    assert run.event_bytes == sum(limits.size_of(e) for e in events)
    assert run.outputs
    assert run.stored_bytes == (
        run.event_bytes
        + limits.size_of(run.inputs)
        + limits.size_of(run.input_overrides)
        + limits.size_of(run.outputs)
    )
    storage = await UserStorage.objects.aget(user=alice)
    assert storage.stored_bytes == run.stored_bytes


@pytest.mark.django_db(transaction=True)
async def test_a_node_whose_output_does_not_fit_is_closed_as_failed(alice, settings):
    """The events as the engine emits them when a node's output takes the log past the cap,
    and the run goes on emitting while it stops."""
    settings.MAX_RUN_EVENT_BYTES = 5_000
    flow = await sync_to_async(new_flow)(alice)
    # Made, not created by services: those would start it, and here the events are fed.
    run = await Run.objects.acreate(
        flow=flow, flow_version=await sync_to_async(flow.current)(), started_by=alice
    )
    recorder = Sink(run.pk)
    stops = []
    recorder.stop_run = lambda: stops.append(True)
    emitted = [
        {"type": "run_started", "inputs": {"text": "hi"}},
        {"type": "node_started", "node": "a", "iteration": 1, "inputs": {"x": "hi"}},
        {"type": "node_started", "node": "b", "iteration": 1, "inputs": {"y": "hi"}},
        {"type": "node_finished", "node": "b", "iteration": 1, "output": {"text": "hi"}},
        {"type": "node_finished", "node": "a", "iteration": 1, "output": {"text": "x" * 6000}},
        {"type": "node_delta", "node": "c", "iteration": 1, "text": "more"},
        {"type": "node_failed", "node": "c", "iteration": 1, "error": "cancelled"},
        {"type": "run_finished", "status": "cancelled", "outputs": {"text": "x" * 6000}},
    ]
    for seq, event in enumerate(emitted, start=1):
        recorder({"seq": seq, "ts": 1000.0 + seq, **event})
    await recorder.close()

    events = await stored_log(run)
    assert [(e["seq"], e["type"], e.get("node")) for e in events] == [
        (1, "run_started", None),
        (2, "node_started", "a"),
        (3, "node_started", "b"),
        (4, "node_finished", "b"),
        (5, "node_failed", "a"),
        (6, "run_finished", None),
    ]
    error = limits.event_log_error(5_000)
    assert events[4]["error"] == error and events[4]["cancelled"] is True
    assert events[5]["status"] == "failed" and events[5]["error"] == error
    assert stops == [True]
    await run.arefresh_from_db()
    assert (run.status, run.error, run.limit_error, run.last_seq) == ("failed", error, error, 6)


# A user's stored bytes


@pytest.mark.django_db(transaction=True)
async def test_a_run_that_takes_its_user_past_the_quota_fails_like_the_cap(alice, settings):
    settings.MAX_STORED_BYTES_PER_USER = 50_000
    run = await run_to_the_end(alice, "x" * 2_000)

    assert run.status == "failed"
    assert run.error == limits.quota_error(50_000)
    assert "SWITCHYARD_MAX_STORED_BYTES_PER_USER" in run.error
    assert_closed(await stored_log(run))
    storage = await UserStorage.objects.aget(user=alice)
    assert storage.stored_bytes == run.stored_bytes
    assert 40_000 < storage.stored_bytes <= 50_000 + 2_000


def test_a_user_over_the_quota_cannot_start_a_run(api, alice, bob, settings):
    settings.MAX_STORED_BYTES_PER_USER = 10_000
    flow = new_flow(alice)
    first = services.create_run(flow, alice, {"text": "x" * 10_000})
    Run.objects.filter(pk=first.pk).update(status=Run.Status.FAILED)
    assert UserStorage.objects.get(user=alice).stored_bytes >= 10_000
    runs = Run.objects.count()

    answer = api("alice").post(f"/api/flows/{flow.pk}/runs", {"inputs": {"text": "hi"}})
    assert answer.status_code == 403
    assert answer["Content-Type"] == PROBLEM
    problem = answer.json()
    assert problem["code"] == "stored_bytes_quota" and problem["limit"] == 10_000
    assert "storage quota" in problem["detail"]
    assert "SWITCHYARD_MAX_STORED_BYTES_PER_USER" in problem["detail"]
    for path in (f"/api/runs/{first.pk}/rerun", f"/api/runs/{first.pk}/resume"):
        assert api("alice").post(path).status_code == 403, path
    assert Run.objects.count() == runs
    # Another user's quota is their own.
    assert services.create_run(flow, bob, {"text": "hi"}).status == "queued"


def test_the_re_run_page_says_why_a_user_over_the_quota_cannot_start(client, alice, settings):
    settings.MAX_STORED_BYTES_PER_USER = 10_000
    run = services.create_run(new_flow(alice), alice, {"text": "x" * 10_000})
    Run.objects.filter(pk=run.pk).update(status=Run.Status.FAILED)
    client.force_login(alice)

    answer = client.post(f"/runs/{run.pk}/resume/")
    assert answer.status_code == 403
    assert b"storage quota" in answer.content
    assert Run.objects.count() == 1


def test_deleting_a_flow_gives_its_runs_storage_back(alice, bob):
    flow, other = new_flow(alice), new_flow(alice)
    services.create_run(flow, alice, {"text": "x" * 500})
    services.create_run(flow, bob, {"text": "y" * 700})
    kept = services.create_run(other, alice, {"text": "z" * 300})
    assert UserStorage.objects.get(user=bob).stored_bytes > 700

    flow.delete()
    assert UserStorage.objects.get(user=alice).stored_bytes == kept.stored_bytes
    assert UserStorage.objects.get(user=bob).stored_bytes == 0


# A user's runs in flight


def test_the_run_past_the_limit_in_flight_is_refused_with_429(api, alice, bob, settings):
    settings.MAX_RUNS_IN_FLIGHT = 2
    flow = new_flow(alice)
    queued = services.create_run(flow, alice, {"text": "a"})
    running = services.create_run(flow, alice, {"text": "b"})
    Run.objects.filter(pk=running.pk).update(status=Run.Status.RUNNING)
    runs = Run.objects.count()

    answer = api("alice").post(f"/api/flows/{flow.pk}/runs", {"inputs": {"text": "c"}})
    assert answer.status_code == 429
    assert answer["Content-Type"] == PROBLEM
    problem = answer.json()
    assert problem["status"] == 429 and problem["code"] == "runs_in_flight_limit"
    assert problem["type"] == "/api/problems/runs_in_flight_limit"
    assert "you have 2 runs queued or running" in problem["detail"]
    assert "SWITCHYARD_MAX_RUNS_IN_FLIGHT" in problem["detail"]
    assert api("alice").post(f"/api/runs/{queued.pk}/rerun").status_code == 429
    assert Run.objects.count() == runs

    # Bob's runs are his own; and once one of alice's finishes, she may start another.
    assert services.create_run(flow, bob, {"text": "d"}).status == "queued"
    Run.objects.filter(pk=queued.pk).update(status=Run.Status.SUCCEEDED)
    assert services.create_run(flow, alice, {"text": "e"}).status == "queued"


def test_the_re_run_page_says_why_a_run_past_the_limit_cannot_start(client, alice, settings):
    settings.MAX_RUNS_IN_FLIGHT = 1
    run = services.create_run(new_flow(alice), alice, {"text": "a"})
    client.force_login(alice)

    answer = client.post(f"/runs/{run.pk}/rerun/")
    assert answer.status_code == 429
    assert b"you have 1 run queued or running" in answer.content
    assert Run.objects.count() == 1


def test_a_limit_of_0_is_no_limit_and_storage_is_still_counted(alice, settings):
    settings.MAX_RUNS_IN_FLIGHT = 0
    settings.MAX_STORED_BYTES_PER_USER = 0
    flow = new_flow(alice)
    for _ in range(3):
        services.create_run(flow, alice, {"text": "x" * 1000})
    assert Run.objects.filter(status="queued").count() == 3
    # Counted all the same, so a quota set later holds from the first request.
    stored = sum(Run.objects.values_list("stored_bytes", flat=True))
    assert UserStorage.objects.get(user=alice).stored_bytes == stored > 3000
