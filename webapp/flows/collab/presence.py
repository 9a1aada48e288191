"""Who has a flow open, live, across every server process.

Each open flow socket is one ``Presence`` row keyed by its channel name. The row is
written when the socket connects and deleted when it disconnects; a heartbeat
(``HEARTBEAT_S``) keeps ``seen`` fresh. Rows not seen for ``EXPIRY_S`` belong to a process
that stopped without saying goodbye: they are left out of every list, and the next
heartbeat on that flow deletes them and tells the others.

Why the database and not the channel layer: the in-memory layer (the embedded default)
is one process's memory, and channels_redis offers no "who is in this group". The
database is shared by every process either way, so "who is here" is one query, right
after any change, wherever the socket lives. The channel layer only carries the news
that the list changed (``presence.changed`` to ``groups.flow_group``); each socket then
renders the list for its own user (everyone else; several tabs of one user count once).
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass

from django.template.loader import render_to_string
from django.utils import timezone

from webapp.flows.models import Presence

HEARTBEAT_S = 15
# Three missed heartbeats: long enough for a busy server, short enough for a crashed one.
EXPIRY_S = 3 * HEARTBEAT_S
COLOURS = 8


@dataclass(frozen=True)
class Present:
    user_id: int
    username: str
    role: str

    @property
    def initials(self) -> str:
        return self.username[:2].upper()

    @property
    def colour(self) -> int:
        """A stable colour per person, the same in every process (unlike hash())."""
        return zlib.crc32(self.username.encode()) % COLOURS


def _fresh_since() -> dt.datetime:
    return timezone.now() - dt.timedelta(seconds=EXPIRY_S)


def join(flow_id: int, user, role: str, channel_name: str) -> None:
    Presence.objects.update_or_create(
        channel_name=channel_name,
        defaults={"flow_id": flow_id, "user": user, "role": role, "seen": timezone.now()},
    )


def leave(channel_name: str) -> None:
    Presence.objects.filter(channel_name=channel_name).delete()


def set_role(channel_name: str, role: str) -> None:
    Presence.objects.filter(channel_name=channel_name).update(role=role)


def heartbeat(flow_id: int, user, role: str, channel_name: str) -> bool:
    """Keep this socket's row fresh and drop the flow's expired ones.

    True when the list others see changed: expired rows went, or this row had itself
    been taken for expired (a long pause) and is back.
    """
    now = timezone.now()
    back = not Presence.objects.filter(channel_name=channel_name).update(seen=now)
    if back:
        join(flow_id, user, role, channel_name)
    expired, _ = Presence.objects.filter(flow_id=flow_id, seen__lt=_fresh_since()).delete()
    return back or expired > 0


def present(flow_id: int) -> list[Present]:
    """Everyone with the flow open, once each, in the order they arrived."""
    rows = (
        Presence.objects.filter(flow_id=flow_id, seen__gte=_fresh_since())
        .select_related("user")
        .order_by("joined", "pk")
    )
    people: dict[int, Present] = {}
    for row in rows:
        people.setdefault(row.user_id, Present(row.user_id, row.user.username, row.role))
    return list(people.values())


def render_others(flow_id: int, user_id: int) -> str:
    """The editor's presence list for `user_id`: everyone else who has the flow open."""
    others = [p for p in present(flow_id) if p.user_id != user_id]
    return render_to_string("flows/_presence.html", {"others": others})
