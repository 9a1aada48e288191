"""A chat link's page and calls, for anyone holding the link (no login).

- ``GET /c/<token>/``: the chat page. Its ``Content-Security-Policy`` lets this server and
  the link's allowed origins frame it (``frame-ancestors``), and nobody else.
- ``POST /c/<token>/messages``: ``{"message", "conversation"?}`` starts a turn (202):
  ``{"conversation", "reply", "stream", "visitor"}``.
- ``GET /c/<token>/conversations/<id>``: that conversation's messages.
- ``GET /c/<token>/conversations/<id>/replies/<id>/stream``: the reply (``chat/stream.py``).
- ``GET /c/embed.js``: the widget: a script tag with ``data-chat="<token>"`` puts the page in
  an iframe where the tag is.

A visitor is known by the signed token the page holds (``X-Chat-Visitor``; a message
without one makes a new visitor and answers its token). Requests whose ``Origin`` is
neither this server nor an allowed origin are refused (403); allowed ones get CORS
headers. A disabled or unknown link, and a conversation of another visitor, are 404.
Only the link's flow runs, on its published version, and a visitor sees only the replies'
text: no run, node, or editor page is reachable from here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt

from webapp import csp, problems
from webapp.chat import service, stream
from webapp.chat.models import ChatLink, ChatMessage
from webapp.chat.service import ChatRefused

VISITOR_HEADER = "X-Chat-Visitor"
VISITOR_COOKIE = "sy_chat_visitor"
EMBED_JS = Path(settings.BASE_DIR) / "static" / "js" / "chat" / "embed.js"


def _own_origin(request: HttpRequest) -> str:
    return service.origin_of(request.build_absolute_uri("/"))


def _cors_refusal(request: HttpRequest, link: ChatLink) -> HttpResponse | None:
    origin = request.headers.get("Origin")
    if origin is None or service.origin_allowed(link, origin, _own_origin(request)):
        return None
    return problems.response(
        403, "origin_not_allowed", f"{origin} is not an allowed origin of this chat"
    )


def _with_cors(request: HttpRequest, answer: HttpResponse) -> HttpResponse:
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() != _own_origin(request):
        answer["Access-Control-Allow-Origin"] = origin
        answer["Access-Control-Expose-Headers"] = "Retry-After"
    answer["Vary"] = "Origin"
    answer["Referrer-Policy"] = "no-referrer"
    answer["X-Robots-Tag"] = "noindex, nofollow"
    return answer


def _refused(request: HttpRequest, refused: ChatRefused) -> HttpResponse:
    answer = problems.response(refused.status, refused.code, refused.detail)
    if refused.retry_after is not None:
        answer["Retry-After"] = str(refused.retry_after)
    return _with_cors(request, answer)


def _preflight(request: HttpRequest, methods: str) -> HttpResponse:
    answer = HttpResponse(status=204)
    answer["Access-Control-Allow-Methods"] = methods
    answer["Access-Control-Allow-Headers"] = f"Content-Type, {VISITOR_HEADER}"
    answer["Access-Control-Max-Age"] = "600"
    return _with_cors(request, answer)


def _link(token: str) -> ChatLink | None:
    return service.link_for(token)


def _not_found(request: HttpRequest) -> HttpResponse:
    return _with_cors(request, problems.response(404, "not_found", "no such chat"))


@never_cache
@xframe_options_exempt
def chat_page(request: HttpRequest, token: str) -> HttpResponse:
    link = _link(token)
    if link is None or request.method != "GET":
        return render(request, "chat/missing.html", status=404)
    visitor = service.visitor_from(request.get_signed_cookie(VISITOR_COOKIE, None, salt="c"))
    visitor = visitor or service.new_visitor()
    signed = service.visitor_token(visitor)
    context = {
        "link": link,
        "token": token,
        "visitor": signed,
        "embedded": request.GET.get("embed") == "1",
    }
    answer = render(request, "chat/page.html", context)
    answer[csp.HEADER] = csp.policy(request, frame_ancestors=service.frame_ancestors(link))
    answer["Referrer-Policy"] = "no-referrer"
    answer["X-Robots-Tag"] = "noindex, nofollow"
    # First-party only (Lax): framed on another site the page keeps its key in memory.
    answer.set_signed_cookie(
        VISITOR_COOKIE,
        signed,
        salt="c",
        max_age=30 * 24 * 3600,
        path="/c/",
        httponly=True,
        samesite="Lax",
        secure=request.is_secure(),
    )
    return answer


@csrf_exempt
def messages(request: HttpRequest, token: str) -> HttpResponse:
    """A turn. CSRF does not apply: nothing here reads a cookie, the visitor is a header."""
    link = _link(token)
    if link is None:
        return _not_found(request)
    if (refusal := _cors_refusal(request, link)) is not None:
        return refusal
    if request.method == "OPTIONS":
        return _preflight(request, "POST")
    if request.method != "POST":
        return _with_cors(request, problems.response(405, "method_not_allowed", "POST a message"))
    try:
        body = _json(request)
        visitor = service.visitor_from(request.headers.get(VISITOR_HEADER))
        visitor = visitor or service.new_visitor()
        reply = service.link_turn(link, visitor, body.get("conversation"), body.get("message"))
    except ChatRefused as refused:
        return _refused(request, refused)
    out = {
        "conversation": reply.conversation_id,
        "reply": service.message_out(reply, with_run=False),
        "stream": f"/c/{token}/conversations/{reply.conversation_id}/replies/{reply.pk}/stream",
        "visitor": service.visitor_token(visitor),
    }
    return _with_cors(request, JsonResponse(out, status=202))


def _json(request: HttpRequest) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ChatRefused(415, "unsupported_media_type", "send application/json")
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise ChatRefused(400, "bad_json", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ChatRefused(400, "bad_json", "the body must be an object: {message, conversation}")
    return body


def _visitor(request: HttpRequest) -> str:
    visitor = service.visitor_from(request.headers.get(VISITOR_HEADER))
    if visitor is None:
        raise ChatRefused(401, "no_visitor", f"send the {VISITOR_HEADER} the chat gave you")
    return visitor


@never_cache
def conversation(request: HttpRequest, token: str, conversation_id: int) -> HttpResponse:
    link = _link(token)
    if link is None:
        return _not_found(request)
    if (refusal := _cors_refusal(request, link)) is not None:
        return refusal
    if request.method == "OPTIONS":
        return _preflight(request, "GET")
    try:
        found = service.visitor_conversation(link, _visitor(request), conversation_id)
    except ChatRefused as refused:
        return _refused(request, refused)
    service.settle(found)
    out = {
        "id": found.pk,
        "messages": [service.message_out(m, with_run=False) for m in found.messages.all()],
    }
    return _with_cors(request, JsonResponse(out))


async def reply_stream(
    request: HttpRequest, token: str, conversation_id: int, message_id: int
) -> HttpResponse:
    link = await sync_to_async(_link)(token)
    if link is None:
        return _not_found(request)
    if (refusal := _cors_refusal(request, link)) is not None:
        return refusal
    if request.method == "OPTIONS":
        return _preflight(request, "GET")
    try:
        message = await sync_to_async(_visitor_reply)(
            link, _visitor(request), conversation_id, message_id
        )
    except ChatRefused as refused:
        return _refused(request, refused)
    return _with_cors(request, stream.response(message, with_run=False))


def _visitor_reply(
    link: ChatLink, visitor: str, conversation_id: int, message_id: int
) -> ChatMessage:
    found = service.visitor_conversation(link, visitor, conversation_id)
    message = (
        found.messages.select_related("conversation", "run__flow_version")
        .filter(pk=message_id, role=ChatMessage.Role.ASSISTANT)
        .first()
    )
    if message is None:
        raise ChatRefused(404, "not_found", "no such reply")
    return message


def embed_script(request: HttpRequest) -> HttpResponse:
    """The widget: any site may load it; what it frames decides who may show it."""
    answer = HttpResponse(EMBED_JS.read_bytes(), content_type="text/javascript; charset=utf-8")
    answer["Cache-Control"] = "public, max-age=300"
    answer["Cross-Origin-Resource-Policy"] = "cross-origin"
    return answer
