"""The channel-layer groups of a flow, and sending to them from synchronous code.

``flow.<id>``: every open flow socket (``/ws/flows/<id>/``) of that flow: presence
changes and saves. ``flow-access.<id>``: every open socket that depends on someone's
access to the flow (the flow sockets and the run sockets of its runs): when access may
have gone, each re-checks its own user's against the database and closes if it has.

Messages go out after the transaction that caused them commits, so a socket that
re-reads the database sees the change it was told about.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)


def flow_group(flow_id: int) -> str:
    return f"flow.{flow_id}"


def access_group(flow_id: int) -> str:
    return f"flow-access.{flow_id}"


def send_now(group: str, message: dict[str, Any]) -> None:
    """Send from synchronous code. A failing channel layer never fails the caller: what
    the message announces is already committed, and sockets re-read on reconnect."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:
        log.exception("could not send %s to %s", message.get("type"), group)


def send_on_commit(group: str, message: dict[str, Any]) -> None:
    transaction.on_commit(partial(send_now, group, message))


def announce_save(flow_id: int, version: int, author: str, message: str) -> None:
    """Tell everyone with the flow open that `author` saved `version` (after commit)."""
    send_on_commit(
        flow_group(flow_id),
        {"type": "flow.saved", "version": version, "author": author, "message": message},
    )


def announce_access_change(flow_ids: Iterable[int], user_id: int | None = None) -> None:
    """Someone's access to these flows may have gone: `user_id`'s alone, or anyone's."""
    for flow_id in set(flow_ids):
        send_on_commit(access_group(flow_id), {"type": "flow.access", "user": user_id})
