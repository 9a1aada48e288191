"""The editor's chat panel: try a chat flow on its newest version, as yourself (editors).

- ``POST /flows/<id>/chat/messages``: ``{"message", "conversation"?}`` starts a turn
  (trigger ``editor``) and answers ``{"conversation", "reply", "stream", "run_url"}``;
- ``GET /flows/<id>/chat/conversations/<id>/replies/<id>/stream``: the reply as it comes
  (``chat/stream.py``).

Each conversation is its maker's: another editor's is a 404. Each reply names its run,
whose page replays it.
"""

from __future__ import annotations

import json

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from webapp import problems
from webapp.chat import service, stream
from webapp.chat.models import ChatMessage
from webapp.chat.service import ChatRefused
from webapp.flows.access import flow_for_editor
from webapp.runs.models import Run


@login_required
@require_POST
def send(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = flow_for_editor(request.user, flow_id)
    try:
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise ChatRefused(400, "bad_json", "the body is not JSON") from None
        if not isinstance(body, dict):
            raise ChatRefused(400, "bad_json", "the body must be an object")
        service.check_message(body.get("message"))
        found = service.owner_conversation(flow, request.user, body.get("conversation"))
        reply = service.send(
            found, body["message"], request.user, flow.current(), Run.Trigger.EDITOR
        )
    except ChatRefused as refused:
        answer = problems.response(refused.status, refused.code, refused.detail)
        if refused.retry_after is not None:
            answer["Retry-After"] = str(refused.retry_after)
        return answer
    stream_url = reverse("chat_panel_stream", args=[flow.pk, reply.conversation_id, reply.pk])
    out = {
        "conversation": reply.conversation_id,
        "reply": service.message_out(reply, with_run=True),
        "stream": stream_url,
        "run_url": reverse("run_detail", args=[reply.run_id]),
    }
    return JsonResponse(out, status=202)


@require_GET
async def reply_stream(
    request: HttpRequest, flow_id: int, conversation_id: int, message_id: int
) -> HttpResponse:
    user = await request.auser()
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    message = await sync_to_async(_own_reply)(user, flow_id, conversation_id, message_id)
    return stream.response(message, with_run=True)


def _own_reply(user, flow_id: int, conversation_id: int, message_id: int) -> ChatMessage:
    # Found by its owner first: anyone else's conversation is a 404, whatever their role.
    message = (
        ChatMessage.objects.select_related("conversation", "run__flow_version")
        .filter(
            pk=message_id,
            role=ChatMessage.Role.ASSISTANT,
            conversation_id=conversation_id,
            conversation__flow_id=flow_id,
            conversation__owner=user,
        )
        .first()
    )
    if message is None:
        raise Http404("No such reply.")
    flow_for_editor(user, flow_id)
    return message
