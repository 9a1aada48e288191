"""``/ws/runs/{id}/``: every recorded event after ``?after=SEQ``, then the live ones.

The database is the truth. On connect the consumer joins the run's group first, then
sends the backlog, so nothing falls between the two; live batches are de-duplicated by
seq, and any gap (the channel layer drops messages to slow consumers) is filled from
the database. Clients only ever see events in seq order, each once.

The socket also joins its flow's access group: when someone's access to the flow may
have gone (flows/signals.py), it re-checks its user's and closes with 4403 if it has.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from webapp.flows.groups import access_group
from webapp.runs.access import can_view_run
from webapp.runs.groups import run_group
from webapp.runs.models import Run, RunEvent

BACKLOG_CHUNK = 1000
CLOSE_TOO_BIG = 1009
CLOSE_POLICY = 1008
CLOSE_ACCESS_GONE = 4403


class RunEventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        self.sent = _after(self.scope.get("query_string", b""))
        self.window_start, self.window_count = time.monotonic(), 0
        self.group = None
        self.access = None
        user = self.scope.get("user")
        flow_id = await _flow_id(self.run_id)
        if flow_id is not None:
            # Joined before the check, so a revocation in between cannot be missed.
            self.access = access_group(flow_id)
            await self.channel_layer.group_add(self.access, self.channel_name)
        if user is None or not await database_sync_to_async(can_view_run)(user, self.run_id):
            # Refusing the handshake looks the same whether the run exists or not.
            await self.disconnect(CLOSE_POLICY)
            await self.close()
            return
        self.group = run_group(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_recorded(upto=None)

    async def disconnect(self, code: int) -> None:
        for group in (self.group, self.access):
            if group is not None:
                await self.channel_layer.group_discard(group, self.channel_name)
        self.group = self.access = None

    async def flow_access(self, message: dict[str, Any]) -> None:
        """Someone's access to the run's flow changed: if it was ours and it is gone, close."""
        user = self.scope.get("user")
        if message.get("user") not in (None, user.pk):
            return
        if not await database_sync_to_async(can_view_run)(user, self.run_id):
            await self.disconnect(CLOSE_ACCESS_GONE)
            await self.close(code=CLOSE_ACCESS_GONE)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        size = len(text_data or "") + len(bytes_data or b"")
        if size > settings.WS_MAX_FRAME_BYTES:
            await self.close(code=CLOSE_TOO_BIG)
            return
        now = time.monotonic()
        if now - self.window_start > 1:
            self.window_start, self.window_count = now, 0
        self.window_count += 1
        if self.window_count > settings.WS_MAX_MESSAGES_PER_SECOND:
            await self.close(code=CLOSE_POLICY)
            return
        if text_data == '{"type":"ping"}':
            await self.send_json({"type": "pong", "seq": self.sent})

    async def run_events(self, message: dict[str, Any]) -> None:
        """A live batch (see recorder.batch_message): forwarded as encoded when it follows on."""
        first, last = message["first"], message["last"]
        if last <= self.sent:
            return
        if first > self.sent + 1:
            await self.send_recorded(upto=first - 1)
        if first == self.sent + 1:
            await self.send(text_data=message["text"])
        else:
            events = [e for e in json.loads(message["text"])["events"] if e["seq"] > self.sent]
            await self.send_json({"events": events})
        self.sent = last

    async def send_recorded(self, upto: int | None) -> None:
        while True:
            chunk = await _recorded(self.run_id, self.sent, upto, BACKLOG_CHUNK)
            if not chunk:
                return
            await self.send_json({"events": chunk})
            self.sent = chunk[-1]["seq"]
            if len(chunk) < BACKLOG_CHUNK:
                return


def _after(query_string: bytes) -> int:
    values = parse_qs(query_string.decode("latin-1")).get("after", ["0"])
    try:
        return max(0, int(values[0]))
    except ValueError:
        return 0


@database_sync_to_async
def _flow_id(run_id: int) -> int | None:
    return Run.objects.filter(pk=run_id).values_list("flow_id", flat=True).first()


@database_sync_to_async
def _recorded(run_id: int, after: int, upto: int | None, limit: int) -> list[dict[str, Any]]:
    events = RunEvent.objects.filter(run_id=run_id, seq__gt=after)
    if upto is not None:
        events = events.filter(seq__lte=upto)
    return list(events.order_by("seq").values_list("payload", flat=True)[:limit])
