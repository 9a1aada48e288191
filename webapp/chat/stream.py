"""A reply as Server-Sent Events: ``delta`` (``{"text"}``, the reply node's streamed text
as it comes), then one ``reply`` (the message as stored, ``message_out``), then the end.

Only the reply node's text leaves: a visitor of a chat link sees no other node's inputs,
outputs or errors. Reads the run's event log through ``runs.follow`` (no thread held).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import StreamingHttpResponse

from graphs.errors import FlowInvalid
from webapp.chat import service
from webapp.chat.models import ChatMessage
from webapp.runs import follow

KEEPALIVE_S = 15.0


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def response(message: ChatMessage, with_run: bool) -> StreamingHttpResponse:
    answer = StreamingHttpResponse(_events(message, with_run), content_type="text/event-stream")
    answer["Cache-Control"] = "no-cache"
    answer["X-Accel-Buffering"] = "no"
    return answer


async def _events(message: ChatMessage, with_run: bool) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    opened = quiet_since = loop.time()
    if message.run_id is not None and not message.settled:
        reply_node = await sync_to_async(_reply_node)(message)
        async for chunk in follow.events(message.run_id):
            now = loop.time()
            texts = [
                e["text"]
                for e in chunk
                if e["type"] == "node_delta" and e.get("node") == reply_node and e.get("text")
            ]
            if texts:
                yield sse("delta", {"text": "".join(texts)})
                quiet_since = now
            elif now - quiet_since >= KEEPALIVE_S:
                yield ": keep-alive\n\n"
                quiet_since = now
            if now - opened >= settings.RUN_STREAM_MAX_S:
                return
    yield sse("reply", await sync_to_async(_settled)(message, with_run))


def _reply_node(message: ChatMessage) -> str | None:
    try:
        return service.shape_of(message.run.flow_version).reply_node
    except (service.ChatRefused, FlowInvalid):  # a flow that no longer compiles streams nothing
        return None


def _settled(message: ChatMessage, with_run: bool) -> dict[str, Any]:
    service.settle(message.conversation)
    message.refresh_from_db()
    return service.message_out(message, with_run)
