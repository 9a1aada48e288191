"""The in-process sink's batches: what a run emits while the process's one event writer is
busy goes in one write and out in one broadcast, stored before it is sent (issue 18: a
burst of runs wrote, and broadcast, nearly an event at a time, which doubled its CPU)."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from webapp.execution import sink as sinks
from webapp.flows import services
from webapp.runs import eventlog
from webapp.runs.models import Run, RunEvent

EXAMPLES = Path(__file__).parents[2] / "examples"


def new_run(owner) -> Run:
    flow = services.create(owner, "chain", json.loads((EXAMPLES / "chain.json").read_text()))
    return Run.objects.create(flow=flow, flow_version=flow.current(), started_by=owner, inputs={})


def delta(n: int) -> dict:
    return {"type": "node_delta", "ts": 100.0 + n, "node": "draft", "iteration": 1, "text": f"t{n}"}


@pytest.mark.django_db(transaction=True)
async def test_events_given_while_the_writer_is_busy_are_stored_and_broadcast_together(alice):
    run = await sync_to_async(new_run)(alice)
    layer = get_channel_layer()
    watcher = await layer.new_channel()
    await layer.group_add(eventlog.run_group(run.pk), watcher)

    # Another run's write holds the one writer thread.
    busy, release = threading.Event(), threading.Event()

    def other_runs_write() -> None:
        busy.set()
        release.wait(30)

    held = asyncio.get_running_loop().run_in_executor(sinks._writer, other_runs_write)
    assert await asyncio.to_thread(busy.wait, 30)

    sink = sinks.Sink(run.pk)
    sink({"type": "run_started", "ts": 100.0})
    await asyncio.sleep(0.2)  # the sink's write is handed over, and waits for the writer
    for n in range(1, 6):
        sink(delta(n))
    # Nothing is stored while the writer is busy, so nothing has been sent.
    assert await sync_to_async(RunEvent.objects.filter(run=run).count)() == 0
    release.set()
    await held
    await sink.close()

    stored = await sync_to_async(list)(
        RunEvent.objects.filter(run=run).order_by("seq").values_list("seq", "payload")
    )
    assert [seq for seq, _ in stored] == [1, 2, 3, 4, 5, 6]
    message = await asyncio.wait_for(layer.receive(watcher), 5)
    assert (message["first"], message["last"]) == (1, 6)
    assert json.loads(message["text"])["events"] == [payload for _, payload in stored]
    # One write, so one broadcast: nothing else for the watcher.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(watcher), 0.3)


def message(first: int, last: int) -> dict:
    return eventlog.batch_message(
        [{"seq": seq, "type": "node_delta"} for seq in range(first, last + 1)]
    )


def test_consecutive_messages_merge_into_one_that_carries_every_event_in_order():
    merged = eventlog.merge_messages([message(1, 2), message(3, 3), message(4, 7)])
    assert [(m["first"], m["last"]) for m in merged] == [(1, 7)]
    assert [e["seq"] for e in json.loads(merged[0]["text"])["events"]] == list(range(1, 8))
    assert merged[0]["type"] == "run.events"


def test_merged_messages_keep_to_the_cap_and_a_gap_starts_a_new_one():
    merged = eventlog.merge_messages([message(1, 3), message(4, 6), message(7, 8)], max_events=6)
    assert [(m["first"], m["last"]) for m in merged] == [(1, 6), (7, 8)]
    alone = message(1, 2)
    merged = eventlog.merge_messages([alone, message(5, 5)])
    assert [(m["first"], m["last"]) for m in merged] == [(1, 2), (5, 5)]
    assert merged[0] is alone  # a message merged with nothing goes as it was
    for m in merged:
        first, last = m["first"], m["last"]
        assert [e["seq"] for e in json.loads(m["text"])["events"]] == list(range(first, last + 1))
