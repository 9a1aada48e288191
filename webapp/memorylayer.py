"""The embedded default's channel layer: channels' in-memory layer, its housekeeping bounded.

channels' ``InMemoryChannelLayer`` looks through every channel's queue and every group's
members for expired entries on each ``receive`` and each ``group_send``. Every socket
waits in ``receive`` and sits in three groups (its run, its flow's access, its
credential), so each live batch of events cost a pass over all of them per watching
socket: under bench/load.py's burst (50 runs, 100 sockets) that grew with the square of
the sockets. Here the pass runs at most every ``CLEAN_EVERY_S``: a message then expires
at most that much past its ``expiry`` (60 s), a membership past its ``group_expiry``
(a day). And a group send puts the message on each member's queue directly, where
channels made a task per member to do the same.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from channels import layers
from channels.exceptions import ChannelFull

CLEAN_EVERY_S = 1.0


class InMemoryChannelLayer(layers.InMemoryChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next_clean = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now < self._next_clean:
            return
        self._next_clean = now + CLEAN_EVERY_S
        super()._clean_expired()

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            # As channels' own: a full queue loses it (the socket's next ping refills it).
            with contextlib.suppress(ChannelFull):
                await self.send(channel, message)  # puts it on the queue, never waits
