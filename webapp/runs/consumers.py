"""``/ws/runs/{id}/``: every recorded event after ``?after=SEQ``, then the live ones.

The database is the truth. On connect the consumer joins the run's group first, then
sends the backlog, so nothing falls between the two; live batches are de-duplicated by
seq, and any gap (the channel layer drops messages to slow consumers) is filled from
the database. Clients only ever see events in seq order, each once.

The socket also joins its flow's access group: when someone's access to the flow may
have gone (flows/signals.py), it re-checks its user's and closes with 4403 if it has. And
it joins its credential's group: when the API token that opened it is revoked, or the
session that opened it logs out, it closes with 4401 (accounts/revocation.py).

The channel layer (Redis, with the celery driver) only makes events arrive sooner; the
socket must not depend on it:
- batches may arrive out of order (workers broadcast after their own commits): one
  that does not follow on is preceded by what is missing, read from the database, and
  one already covered is dropped;
- a broadcast may be lost (Redis down, or a slow consumer's overflow): the client pings
  every few seconds while it is quiet, and a ping sends whatever the database holds
  beyond what this socket sent (one primary-key read when there is nothing new);
- when the layer cannot be reached at connect, the socket still sends the backlog, then
  closes with 4503 so that the client comes back (?after=its last seq) and rejoins the
  groups once the layer is back; when the layer fails under an open socket, it closes
  the same way rather than with the server's 1011.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError

from webapp.accounts import revocation
from webapp.flows.groups import access_group
from webapp.runs import eventlog
from webapp.runs.access import can_view_run
from webapp.runs.eventlog import run_group
from webapp.runs.models import Run
from webapp.socketdb import OffTheSharedThread, socket_db

BACKLOG_CHUNK = 1000
CLOSE_TOO_BIG = 1009
CLOSE_POLICY = 1008
CLOSE_ACCESS_GONE = 4403
CLOSE_SIGNED_OUT = revocation.CLOSE_SIGNED_OUT
CLOSE_LAYER_DOWN = 4503  # runs/follower.js reconnects after its last seq, without a backoff reset
PING = '{"type":"ping"}'
# Joining a group waits no longer than this for the channel layer (an unreachable Redis
# host can take minutes to time out a connection).
LAYER_TIMEOUT_S = 5.0
# What the channel layer raises when it cannot be reached (channels_redis: redis-py's
# errors, or the socket's).
LAYER_ERRORS = (RedisError, OSError)

log = logging.getLogger(__name__)


class RunEventsConsumer(OffTheSharedThread, AsyncJsonWebsocketConsumer):
    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except LAYER_ERRORS as error:
            # The channel layer failed under an open socket (its receive raises): say so
            # with a close the client answers by reconnecting, after its last seq.
            log.warning("run socket: channel layer unreachable (%s); closing", error)
            with contextlib.suppress(Exception):  # already closed: nothing left to tell
                await send({"type": "websocket.close", "code": CLOSE_LAYER_DOWN})

    async def connect(self) -> None:
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        self.sent = _after(self.scope.get("query_string", b""))
        self.window_start, self.window_count = time.monotonic(), 0
        self.group = None
        self.access = None
        self.credentials: list[str] = []
        user = self.scope.get("user")
        flow_id = await _flow_id(self.run_id)
        live = True
        if flow_id is not None:
            # Joined before the check, so a revocation in between cannot be missed.
            self.access = access_group(flow_id)
            live = await self.join(self.access)
        # Joined before the credential's re-check, for the same reason as the access group.
        for group in revocation.groups_for(self.scope):
            if live:
                live = await self.join(group)
                self.credentials.append(group)
        # Both checks in one trip to a socket-db thread: under a burst each trip queues.
        if user is None or not await _may_watch(user, self.run_id, self.scope):
            # Refusing the handshake looks the same whether the run exists or not.
            await self.disconnect(CLOSE_POLICY)
            await self.close()
            return
        if live:
            self.group = run_group(self.run_id)
            live = await self.join(self.group)
        await self.accept()
        await self.send_recorded(upto=None)
        if not live:
            # Without the layer this socket would hear neither new events nor a revoked
            # access: the backlog is sent, and the client comes back for the rest.
            await self.disconnect(CLOSE_LAYER_DOWN)
            await self.close(code=CLOSE_LAYER_DOWN)

    async def join(self, group: str) -> bool:
        """Join a group of the channel layer; False when the layer cannot be reached."""
        try:
            await asyncio.wait_for(
                self.channel_layer.group_add(group, self.channel_name), LAYER_TIMEOUT_S
            )
        except LAYER_ERRORS as error:  # a timeout too: TimeoutError is an OSError
            log.warning("run %s socket: channel layer unreachable (%s)", self.run_id, error)
            return False
        return True

    async def disconnect(self, code: int) -> None:
        groups = [g for g in (self.group, self.access) if g is not None] + self.credentials
        self.group = self.access = None
        self.credentials = []
        for group in groups:
            # When the layer is down, its entries expire by themselves (channels_redis).
            with contextlib.suppress(*LAYER_ERRORS):
                await self.channel_layer.group_discard(group, self.channel_name)

    async def flow_access(self, message: dict[str, Any]) -> None:
        """Someone's access to the run's flow changed: if it was ours and it is gone, close."""
        user = self.scope.get("user")
        if message.get("user") not in (None, user.pk):
            return
        if not await socket_db(can_view_run)(user, self.run_id):
            await self.disconnect(CLOSE_ACCESS_GONE)
            await self.close(code=CLOSE_ACCESS_GONE)

    async def credentials_revoked(self, message: dict[str, Any]) -> None:
        """The token or session that opened this socket is gone: close with 4401."""
        await self.disconnect(CLOSE_SIGNED_OUT)
        await self.close(code=CLOSE_SIGNED_OUT)

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
        if text_data == PING:
            # Whatever the channel layer did not bring, the database does.
            if await _last_seq(self.run_id) > self.sent:
                await self.send_recorded(upto=None)
            await self.send_json({"type": "pong", "seq": self.sent})

    async def run_events(self, message: dict[str, Any]) -> None:
        """A live batch (see eventlog.batch_message): forwarded as encoded when it follows on."""
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


@socket_db
def _flow_id(run_id: int) -> int | None:
    return Run.objects.filter(pk=run_id).values_list("flow_id", flat=True).first()


@socket_db
def _may_watch(user: Any, run_id: int, scope: dict[str, Any]) -> bool:
    """The user may view the run, and the credential that opened the socket still exists."""
    return can_view_run(user, run_id) and revocation.still_valid.__wrapped__(scope)


@socket_db
def _last_seq(run_id: int) -> int:
    return Run.objects.filter(pk=run_id).values_list("last_seq", flat=True).first() or 0


@socket_db
def _recorded(run_id: int, after: int, upto: int | None, limit: int) -> list[dict[str, Any]]:
    return eventlog.events(run_id, after, limit, upto=upto)
