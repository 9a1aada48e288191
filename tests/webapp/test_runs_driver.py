"""The in-process driver: runs execute in the server loop; events are committed, then broadcast."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from tests.support.wait import wait_for_async
from webapp.flows import services
from webapp.runs import drivers
from webapp.runs.groups import run_group
from webapp.runs.models import Run, RunEvent

pytestmark = pytest.mark.django_db(transaction=True)
EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    drivers.engine_services.cache_clear()
    yield
    drivers.engine_services.cache_clear()


@sync_to_async
def new_run(owner, example: str, inputs: dict | None = None) -> Run:
    document = json.loads((EXAMPLES / f"{example}.json").read_text())
    flow = services.create(owner, example, document)
    return Run.objects.create(
        flow=flow, flow_version=flow.current(), started_by=owner, inputs=inputs or {}
    )


async def test_a_run_records_every_event_and_its_result(alice):
    run = await new_run(alice, "fanout")
    await drivers.start_run(run.pk)
    await drivers.driver().wait_idle()
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
    await drivers.start_run(run.pk)
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
    await drivers.driver().wait_idle()
    assert seen == await RunEvent.objects.filter(run=run).acount()


async def test_cancel_reaches_a_running_run(alice, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_OFFLINE_DELAY_MS", "200")
    drivers.engine_services.cache_clear()
    run = await new_run(alice, "chain")
    await drivers.start_run(run.pk)
    await wait_for_async(
        RunEvent.objects.filter(run=run, type="node_delta").aexists, message="a node_delta"
    )
    assert await drivers.cancel_run(run.pk) is True
    await drivers.driver().wait_idle()
    await run.arefresh_from_db()
    assert run.status == "cancelled"


async def test_cancelling_a_run_no_process_holds_marks_it_cancelled(alice):
    run = await new_run(alice, "chain")
    assert await drivers.cancel_run(run.pk) is True
    await run.arefresh_from_db()
    assert run.status == "cancelled"
    assert await drivers.cancel_run(run.pk) is False


async def test_a_cancel_right_after_start_wins_over_the_start(alice):
    run = await new_run(alice, "chain")
    await drivers.start_run(run.pk)
    assert await drivers.cancel_run(run.pk) is True
    await drivers.driver().wait_idle()
    await run.arefresh_from_db()
    assert run.status == "cancelled"
