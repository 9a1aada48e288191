"""Following one run from an async view: the API's ``wait`` and its event stream (SSE).

As for the run socket (``consumers.py``), the database is the truth and the channel layer
only makes things arrive sooner: a follower joins the run's group so that a broadcast
wakes it at once, and otherwise looks at the database every ``POLL_S``. A lost broadcast,
or a channel layer that cannot be reached at all (Redis down), costs latency, never an
event. Waiting holds no thread: the ORM is reached through ``sync_to_async`` one
short query at a time, so a thousand waiting clients cost a thousand idle coroutines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from webapp.runs import eventlog
from webapp.runs.eventlog import run_group
from webapp.runs.models import Run

POLL_S = 1.0
CHUNK = 500
LAYER_TIMEOUT_S = 5.0
LAYER_ERRORS = (RedisError, OSError)

log = logging.getLogger(__name__)


class Follower:
    """A run's group membership for one waiting view; ``wake`` waits for a broadcast."""

    def __init__(self, run_id: int):
        self.run_id = run_id
        self.layer = get_channel_layer()
        self.channel: str | None = None

    async def __aenter__(self) -> Follower:
        if self.layer is None:
            return self
        try:
            channel = await asyncio.wait_for(self.layer.new_channel(), LAYER_TIMEOUT_S)
            await asyncio.wait_for(
                self.layer.group_add(run_group(self.run_id), channel), LAYER_TIMEOUT_S
            )
        except LAYER_ERRORS as error:  # a timeout too: TimeoutError is an OSError
            log.warning("run %s follower: channel layer unreachable (%s)", self.run_id, error)
            return self
        self.channel = channel
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.channel is not None:
            with contextlib.suppress(*LAYER_ERRORS):
                await self.layer.group_discard(run_group(self.run_id), self.channel)

    async def wake(self, timeout: float) -> list[dict[str, Any]]:
        """The events of the next broadcast, or [] when `timeout` passes first (or the layer
        fails: the database is asked next either way)."""
        if self.channel is None:
            await asyncio.sleep(timeout)
            return []
        try:
            message = await asyncio.wait_for(self.layer.receive(self.channel), timeout)
        except (TimeoutError, *LAYER_ERRORS):
            return []
        if message.get("type") != "run.events":
            return []
        return json.loads(message["text"])["events"]


async def until_finished(run_id: int, timeout: float) -> bool:
    """Wait up to `timeout` seconds for the run to end; True when it has."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with Follower(run_id) as follower:
        while not await _finished(run_id):
            left = deadline - loop.time()
            if left <= 0:
                return False
            events = await follower.wake(min(left, POLL_S))
            if any(event["type"] == "run_finished" for event in events):
                return True
    return True


async def events(run_id: int, after: int = 0) -> AsyncIterator[list[dict[str, Any]]]:
    """The run's events after seq `after`, in order, in chunks: what is stored first, then
    each new batch as it is stored; ends with the run's last event.

    A run that ended without closing its log (a failure no engine recorded) ends the
    stream once everything stored has been given. While nothing happens it yields an
    empty chunk every ``POLL_S``, so that the caller can keep its connection alive.
    """
    async with Follower(run_id) as follower:
        while True:
            chunk = await _recorded(run_id, after)
            if chunk:
                yield chunk
                after = chunk[-1]["seq"]
                if chunk[-1]["type"] == "run_finished":
                    return
                continue
            if await _finished(run_id) and not await _recorded(run_id, after):
                return
            if not await follower.wake(POLL_S):
                yield []


@sync_to_async
def _finished(run_id: int) -> bool:
    status = Run.objects.filter(pk=run_id).values_list("status", flat=True).first()
    return status is None or status in Run.FINISHED


@sync_to_async
def _recorded(run_id: int, after: int) -> list[dict[str, Any]]:
    return eventlog.events(run_id, after, CHUNK)
