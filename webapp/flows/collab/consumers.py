"""``/ws/flows/{id}/``: who else has the flow open, and every save of it, live.

Viewers and up may connect (session or ``Authorization: Bearer``, like the run socket);
anyone else is refused exactly as for a flow that does not exist. The server sends:

- ``{"type": "hello", "version": N}`` once: the flow's version now, so a client that
  reconnects can tell it missed a save;
- ``{"type": "presence", "html": ...}`` whenever who is here changes (collab/presence.py);
- ``{"type": "saved", "version", "author", "message"}`` after each save commits;
- ``{"type": "role", "role": ...}`` when the user's role on the flow changes.

When the user's access to the flow goes (membership, share, transfer, deletion), the
socket closes with code 4403; when the API token or the session that opened it goes
(revoked, logged out: accounts/revocation.py), with 4401. Clients may send
``{"type":"ping"}``; nothing else is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from webapp.accounts import revocation
from webapp.flows.access import role_on_flow
from webapp.flows.collab import presence
from webapp.flows.groups import access_group, flow_group
from webapp.flows.models import Flow

CLOSE_TOO_BIG = 1009
CLOSE_POLICY = 1008
CLOSE_ACCESS_GONE = 4403
CLOSE_SIGNED_OUT = revocation.CLOSE_SIGNED_OUT


class FrameLimits:
    """The run socket's limits: frames of at most WS_MAX_FRAME_BYTES, and at most
    WS_MAX_MESSAGES_PER_SECOND of them. ``check`` gives the close code when broken."""

    def __init__(self) -> None:
        self.window_start, self.window_count = time.monotonic(), 0

    def check(self, text_data: str | None, bytes_data: bytes | None) -> int | None:
        if len(text_data or "") + len(bytes_data or b"") > settings.WS_MAX_FRAME_BYTES:
            return CLOSE_TOO_BIG
        now = time.monotonic()
        if now - self.window_start > 1:
            self.window_start, self.window_count = now, 0
        self.window_count += 1
        if self.window_count > settings.WS_MAX_MESSAGES_PER_SECOND:
            return CLOSE_POLICY
        return None


class FlowConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.flow_id = int(self.scope["url_route"]["kwargs"]["flow_id"])
        self.user = self.scope.get("user")
        self.limits = FrameLimits()
        self.joined = False
        self.beat: asyncio.Task | None = None
        self.groups_joined: list[str] = []
        if self.user is None or not self.user.is_authenticated:
            await self.close()
            return
        # Join the access and credential groups before checking, so a revocation between
        # the check and the join cannot be missed.
        await self._group_add(access_group(self.flow_id))
        for group in revocation.groups_for(self.scope):
            await self._group_add(group)
        self.role = await _role(self.user, self.flow_id)
        if self.role is None or not await revocation.still_valid(self.scope):
            # Refusing the handshake looks the same whether the flow exists or not.
            await self._leave_groups()
            await self.close()
            return
        await self._group_add(flow_group(self.flow_id))
        await self.accept()
        await database_sync_to_async(presence.join)(
            self.flow_id, self.user, self.role, self.channel_name
        )
        self.joined = True
        await self._presence_changed()
        await self.send_json({"type": "hello", "version": await _version(self.flow_id)})
        self.beat = asyncio.create_task(self._heartbeat())

    async def disconnect(self, code: int) -> None:
        await self._leave()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        broken = self.limits.check(text_data, bytes_data)
        if broken is not None:
            await self._leave()
            await self.close(code=broken)
            return
        if text_data == '{"type":"ping"}':
            await self.send_json({"type": "pong"})

    # ---- Messages from the channel layer ----------------------------------------------

    async def presence_changed(self, message: dict[str, Any]) -> None:
        html = await database_sync_to_async(presence.render_others)(self.flow_id, self.user.pk)
        await self.send_json({"type": "presence", "html": html})

    async def flow_saved(self, message: dict[str, Any]) -> None:
        await self.send_json(
            {
                "type": "saved",
                "version": message["version"],
                "author": message["author"],
                "message": message["message"],
            }
        )

    async def flow_access(self, message: dict[str, Any]) -> None:
        """Someone's access changed: re-check ours; close with 4403 if it is gone."""
        if message.get("user") not in (None, self.user.pk) or not self.joined:
            return
        role = await _role(self.user, self.flow_id)
        if role is None:
            await self._leave()
            await self.close(code=CLOSE_ACCESS_GONE)
        elif role != self.role:
            self.role = role
            await database_sync_to_async(presence.set_role)(self.channel_name, role)
            await self.send_json({"type": "role", "role": role})
            await self._presence_changed()

    async def credentials_revoked(self, message: dict[str, Any]) -> None:
        """The token or session that opened this socket is gone: close with 4401."""
        await self._leave()
        await self.close(code=CLOSE_SIGNED_OUT)

    # ---- Internals ----------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(presence.HEARTBEAT_S)
            changed = await database_sync_to_async(presence.heartbeat)(
                self.flow_id, self.user, self.role, self.channel_name
            )
            if changed:
                await self._presence_changed()

    async def _presence_changed(self) -> None:
        await self.channel_layer.group_send(flow_group(self.flow_id), {"type": "presence.changed"})

    async def _group_add(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined.append(group)

    async def _leave_groups(self) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined = []

    async def _leave(self) -> None:
        """Everything connect() set up, undone; safe to call more than once."""
        if self.beat is not None:
            self.beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.beat
            self.beat = None
        await self._leave_groups()
        if self.joined:
            self.joined = False
            await database_sync_to_async(presence.leave)(self.channel_name)
            await self._presence_changed()


@database_sync_to_async
def _role(user, flow_id: int) -> str | None:
    flow = Flow.objects.filter(pk=flow_id).first()
    return None if flow is None else role_on_flow(user, flow)


@database_sync_to_async
def _version(flow_id: int) -> int:
    return Flow.objects.filter(pk=flow_id).values_list("version", flat=True).first() or 0
