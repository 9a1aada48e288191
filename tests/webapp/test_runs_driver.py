"""Executing runs: the in-process driver runs them in the server loop, its events committed
then broadcast; webapp.execution hands runs to the driver the settings name."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction

from tests.support.wait import wait_for_async
from webapp import execution
from webapp.execution import plans
from webapp.flows import services
from webapp.runs import services as runs
from webapp.runs.eventlog import run_group
from webapp.runs.models import Run, RunEvent

pytestmark = pytest.mark.django_db(transaction=True)
EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    plans.engine_services.cache_clear()
    yield
    plans.engine_services.cache_clear()


@sync_to_async
def new_run(owner, example: str, inputs: dict | None = None) -> Run:
    document = json.loads((EXAMPLES / f"{example}.json").read_text())
    flow = services.create(owner, example, document)
    return Run.objects.create(
        flow=flow, flow_version=flow.current(), started_by=owner, inputs=inputs or {}
    )


async def test_a_run_records_every_event_and_its_result(alice):
    run = await new_run(alice, "fanout")
    execution.start(run.pk)
    await execution.driver().wait_idle()
    await run.arefresh_from_db()
    assert run.status == "succeeded"
    assert run.started_at and run.finished_at and run.finished_at >= run.started_at
    assert "recommendation" in run.outputs
    assert run.output_tokens > 0
    seqs = [s async for s in RunEvent.objects.filter(run=run).values_list("seq", flat=True)]
    assert seqs == list(range(1, len(seqs) + 1)) and run.last_seq == len(seqs)
    last = await RunEvent.objects.filter(run=run).alast()
    assert last.type == "run_finished" and last.payload["status"] == "succeeded"


async def test_events_are_committed_before_they_are_broadcast(alice):
    run = await new_run(alice, "chain")
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(run_group(run.pk), channel)
    execution.start(run.pk)
    seen = 0
    async with asyncio.timeout(30):  # the run's last broadcast, or a failure naming this line
        while True:
            message = await layer.receive(channel)
            top = message["last"]
            stored = await RunEvent.objects.filter(run=run, seq__lte=top).acount()
            assert stored == top, "a broadcast arrived before its events were committed"
            seen = top
            if json.loads(message["text"])["events"][-1]["type"] == "run_finished":
                break
    await execution.driver().wait_idle()
    assert seen == await RunEvent.objects.filter(run=run).acount()


async def test_cancel_reaches_a_running_run(alice, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_OFFLINE_DELAY_MS", "200")
    plans.engine_services.cache_clear()
    run = await new_run(alice, "chain")
    execution.start(run.pk)
    await wait_for_async(
        RunEvent.objects.filter(run=run, type="node_delta").aexists, message="a node_delta"
    )
    assert await sync_to_async(execution.cancel)(run.pk) is True
    await execution.driver().wait_idle()
    await run.arefresh_from_db()
    assert run.status == "cancelled"


async def test_cancelling_a_run_no_process_holds_marks_it_cancelled(alice):
    run = await new_run(alice, "chain")
    assert await sync_to_async(execution.cancel)(run.pk) is True
    await run.arefresh_from_db()
    assert run.status == "cancelled"
    assert await sync_to_async(execution.cancel)(run.pk) is False


async def test_a_cancel_right_after_start_wins_over_the_start(alice):
    run = await new_run(alice, "chain")
    execution.start(run.pk)
    assert await sync_to_async(execution.cancel)(run.pk) is True
    await execution.driver().wait_idle()
    await run.arefresh_from_db()
    assert run.status == "cancelled"


# The interface: start and cancel, sync, from any thread; the driver a setting names


class Holding:
    """A driver that holds what it is handed (as Django's locmem mail backend keeps mail)."""

    runs_outlive_the_server = False

    def __init__(self) -> None:
        self.started: list[int] = []

    def start(self, run_id: int) -> str | None:
        self.started.append(run_id)
        return "held"

    def cancel(self, run_id: int) -> bool:
        return False


def test_the_driver_is_the_class_the_setting_names(settings):
    settings.RUN_DRIVER = f"{__name__}.Holding"
    assert isinstance(execution.driver(), Holding)
    settings.RUN_DRIVER = "webapp.execution.inprocess.InProcessDriver"
    assert type(execution.driver()).__name__ == "InProcessDriver"


def test_a_stored_run_is_handed_to_the_driver_once_its_transaction_commits(alice, settings):
    settings.RUN_DRIVER = f"{__name__}.Holding"
    held = execution.driver()
    flow = services.create(alice, "chain", json.loads((EXAMPLES / "chain.json").read_text()))
    with transaction.atomic():
        run = runs.create_run(flow, alice, {"topic": "queues"})
        assert run.pk not in held.started
    assert held.started[-1] == run.pk
    assert runs.start_notice(run) == "held"


def test_a_run_started_by_a_sync_request_runs_on_the_drivers_own_loop(api, alice):
    """The sync test client has no server loop: the driver's own loop runs the run."""
    flow = services.create(alice, "chain", json.loads((EXAMPLES / "chain.json").read_text()))
    answer = api("alice").post(f"/api/flows/{flow.pk}/runs", {"inputs": {"topic": "stacks"}})
    assert answer.status_code == 201 and answer.json()["notice"] is None
    asyncio.run(execution.driver().wait_idle())
    run = Run.objects.get(pk=answer.json()["id"])
    assert run.status == "succeeded"
    assert list(RunEvent.objects.filter(run=run).values_list("seq", flat=True)) == list(
        range(1, run.last_seq + 1)
    )
