"""Chat flows: what makes one, a turn of a conversation, and the rules of a chat link.

A **chat flow** has an ``input`` of kind ``chat`` (graphs/nodes/io.py); its **reply** is
its one output, or the output named ``reply`` when it has several. A turn runs the flow
with that input set to ``{"message", "history"}``: the new message and the conversation's
earlier messages (user and assistant, oldest first, the last ``MAX_HISTORY``). The reply
streams as the text of the node wired into the reply output (``ChatShape.reply_node``).

A reply is stored when its run has ended (``settle``): the reply output's value, as text.
A conversation takes one turn at a time: a message sent while the last reply is still
being made is refused (409).

Chat links: the token is URL-safe random (``TOKEN``); a visitor is known by a key of
random characters that the server signs (``visitor_token``) and the page hands back in the
``X-Chat-Visitor`` header; conversations are found by link and visitor key together, so a
visitor reaches their own and no other. Allowed origins are ``scheme://host[:port]``,
``http`` or ``https``, without a path.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.core import signing
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from graphs.errors import FlowInvalid
from webapp.chat.models import ChatLink, ChatMessage, Conversation
from webapp.core.ratelimit import Refused, seconds_to_wait
from webapp.execution.plans import VersionCannotRun, compiled_version
from webapp.flows.access import can_edit_flow
from webapp.flows.models import Flow, FlowVersion
from webapp.runs.limits import RunRefused
from webapp.runs.models import Run
from webapp.runs.services import create_run, version_for_outside

TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
MAX_MESSAGE_CHARS = 4000
MAX_HISTORY = 40
MAX_ORIGINS = 20
MAX_PER_MINUTE = 10_000
VISITOR_SALT = "switchyard.chat.visitor"
ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)
FAILED_REPLY = "(no reply: the run failed)"


class ChatRefused(Refused):
    """A turn that starts nothing."""


@dataclass(frozen=True)
class ChatShape:
    input: str  # the chat input's run input name
    reply_output: str  # the run output that is the reply
    reply_node: str | None  # the node whose streamed text is the reply


def shape_of(version: FlowVersion) -> ChatShape:
    """How `version` chats; ChatRefused 409 when it is not a chat flow."""
    compiled = compiled_version(version)
    chats = [
        name
        for name, spec in compiled.inputs.items()
        if getattr(compiled.nodes[spec.node].config, "kind", "value") == "chat"
    ]
    outputs = {
        spec.config.name: node_id  # type: ignore[attr-defined]
        for node_id, spec in compiled.nodes.items()
        if spec.type.name == "output"
    }
    if len(chats) != 1:
        raise ChatRefused(409, "not_a_chat_flow", "a chat flow has exactly one input of kind chat")
    if "reply" in outputs:
        reply = "reply"
    elif len(outputs) == 1:
        reply = next(iter(outputs))
    else:
        raise ChatRefused(409, "not_a_chat_flow", "a chat flow has one output, or one named reply")
    feeding = [
        edge["source"]
        for edge in version.graph.get("edges", [])
        if edge.get("target") == outputs[reply]
    ]
    return ChatShape(chats[0], reply, feeding[0] if len(feeding) == 1 else None)


def is_chat_flow(version: FlowVersion) -> bool:
    try:
        shape_of(version)
    except (ChatRefused, FlowInvalid):
        return False
    return True


# ---- Conversations and turns -----------------------------------------------------------


def check_message(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ChatRefused(400, "bad_message", "message must be non-empty text")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ChatRefused(
            400, "message_too_long", f"message is over {MAX_MESSAGE_CHARS} characters"
        )
    return text


def reply_text(run: Run, shape: ChatShape) -> str:
    if run.status != Run.Status.SUCCEEDED or shape.reply_output not in run.outputs:
        return FAILED_REPLY
    value = run.outputs[shape.reply_output]
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def settle(conversation: Conversation) -> None:
    """Store the replies of the conversation's runs that have ended."""
    pending = conversation.messages.filter(settled=False).select_related("run__flow_version")
    for message in pending:
        run = message.run
        if run is not None and not run.finished:
            continue
        message.content = FAILED_REPLY if run is None else reply_text(run, _shape_or_none(run))
        message.settled = True
        message.save(update_fields=["content", "settled"])


def _shape_or_none(run: Run) -> ChatShape:
    try:
        return shape_of(run.flow_version)
    except (ChatRefused, FlowInvalid):
        return ChatShape("", "", None)


def history(conversation: Conversation) -> list[dict[str, str]]:
    """The conversation so far as a chat input takes it; failed replies left out."""
    turns = [
        {"role": m.role, "content": m.content}
        for m in conversation.messages.filter(settled=True).exclude(content=FAILED_REPLY)
    ]
    return turns[-MAX_HISTORY:]


def send(
    conversation: Conversation, text: str, user, version: FlowVersion, trigger: str
) -> ChatMessage:
    """Start a turn: store the message, start its run, and return the reply's message
    (unsettled, linked to the run). ChatRefused when nothing starts."""
    text = check_message(text)
    settle(conversation)
    if conversation.messages.filter(settled=False).exists():
        raise ChatRefused(409, "reply_pending", "wait for the reply before sending again")
    try:
        shape = shape_of(version)
    except VersionCannotRun as exc:
        # Saved unfinished: the version names its problems.
        raise ChatRefused(400, "invalid_flow", f"the turn cannot start: {exc}") from None
    turn = {"message": text, "history": history(conversation)}
    try:
        with transaction.atomic():
            run = create_run(
                conversation.flow, user, {shape.input: turn}, version=version, trigger=trigger
            )
            ChatMessage.objects.create(conversation=conversation, role="user", content=text)
            return ChatMessage.objects.create(
                conversation=conversation, role="assistant", run=run, settled=False
            )
    except FlowInvalid as exc:
        detail = "; ".join(str(p) for p in exc.problems)
        raise ChatRefused(400, "invalid_inputs", f"the turn cannot start: {detail}") from None
    except RunRefused as exc:
        raise ChatRefused(exc.status, exc.code, str(exc)) from None


def message_out(message: ChatMessage, with_run: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": message.pk,
        "role": message.role,
        "content": message.content,
        "pending": not message.settled,
    }
    if with_run:
        out["run"] = message.run_id
    return out


# ---- The editor's panel ------------------------------------------------------------------


def owner_conversation(flow: Flow, user, conversation_id: Any) -> Conversation:
    """The user's conversation `conversation_id` with the flow (a new one when None)."""
    if conversation_id is None:
        return Conversation.objects.create(flow=flow, owner=user)
    found = _by_id(Conversation.objects.filter(flow=flow, owner=user), conversation_id)
    if found is None:
        raise ChatRefused(404, "not_found", "no such conversation")
    return found


def _by_id(conversations: QuerySet[Conversation], conversation_id: Any) -> Conversation | None:
    if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
        raise ChatRefused(400, "bad_conversation", "conversation must be an id (a number)")
    return conversations.filter(pk=conversation_id).first()


# ---- Chat links ------------------------------------------------------------------------


def check_origins(origins: Any) -> list[str]:
    """The origins as stored, or ValueError naming the one that is wrong."""
    if not isinstance(origins, list) or len(origins) > MAX_ORIGINS:
        raise ValueError(f"allowed_origins must be a list of at most {MAX_ORIGINS} origins")
    kept = []
    for origin in origins:
        if not isinstance(origin, str) or not ORIGIN.fullmatch(origin.strip().rstrip("/")):
            raise ValueError(
                f"allowed_origins: {origin!r} is not an origin (scheme://host[:port], "
                "http or https, no path)"
            )
        cleaned = origin.strip().rstrip("/").lower()
        if cleaned not in kept:
            kept.append(cleaned)
    return kept


def create_link(
    flow: Flow,
    user,
    name: str,
    origins: list[str] | None = None,
    per_minute: int = 60,
    per_visitor_minute: int = 10,
) -> ChatLink:
    return ChatLink.objects.create(
        flow=flow,
        name=name,
        token=secrets.token_urlsafe(32),
        allowed_origins=check_origins(origins or []),
        per_minute=per_minute,
        per_visitor_minute=per_visitor_minute,
        created_by=user,
    )


def link_for(token: str) -> ChatLink | None:
    """The enabled link with this token, or None."""
    if not TOKEN.fullmatch(token):
        return None
    link = (
        ChatLink.objects.select_related("flow", "created_by")
        .filter(token=token, enabled=True)
        .first()
    )
    return link


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(link: ChatLink, origin: str, own: str) -> bool:
    origin = origin.lower()
    return origin == own.lower() or origin in link.allowed_origins


def frame_ancestors(link: ChatLink) -> list[str]:
    return ["'self'", *link.allowed_origins]


def new_visitor() -> str:
    return secrets.token_urlsafe(18)


def visitor_token(key: str) -> str:
    return signing.dumps(key, salt=VISITOR_SALT)


def visitor_from(token: str | None) -> str | None:
    """The visitor key a token signs, or None for a missing or forged one."""
    if not token or len(token) > 200:
        return None
    try:
        key = signing.loads(token, salt=VISITOR_SALT)
    except signing.BadSignature:
        return None
    return key if isinstance(key, str) and 0 < len(key) <= 64 else None


def visitor_conversation(link: ChatLink, visitor: str, conversation_id: Any) -> Conversation:
    """The visitor's conversation through this link (a new one when None); another
    visitor's, or another link's, is a 404 like one that does not exist."""
    if conversation_id is None:
        return Conversation.objects.create(flow=link.flow, link=link, visitor=visitor)
    found = _by_id(Conversation.objects.filter(link=link, visitor=visitor), conversation_id)
    if found is None:
        raise ChatRefused(404, "not_found", "no such conversation")
    return found


def take_slot(link: ChatLink, visitor: str) -> None:
    """ChatRefused 429 when the link, or this visitor, had their turns of the last minute."""
    since = timezone.now() - timedelta(minutes=1)
    recent = ChatMessage.objects.filter(
        role=ChatMessage.Role.USER, created__gte=since, conversation__link=link
    )
    _limit(recent, link.per_minute, "this chat takes {} messages a minute")
    _limit(
        recent.filter(conversation__visitor=visitor),
        link.per_visitor_minute,
        "you can send {} messages a minute here",
    )


def _limit(recent: QuerySet[ChatMessage], per_minute: int, words: str) -> None:
    times = list(recent.order_by("created").values_list("created", flat=True))
    wait = seconds_to_wait(times, per_minute, timezone.now())
    if wait is not None:
        raise ChatRefused(429, "rate_limited", words.format(per_minute), retry_after=wait)


def link_turn(link: ChatLink, visitor: str, conversation_id: Any, text: str) -> ChatMessage:
    """A visitor's turn through a link, on the flow's published version (else newest)."""
    check_message(text)
    if not can_edit_flow(link.created_by, link.flow_id):
        raise ChatRefused(
            403, "link_owner_lost_access", "this chat is closed: its maker can no longer edit it"
        )
    take_slot(link, visitor)
    conversation = visitor_conversation(link, visitor, conversation_id)
    return send(
        conversation, text, link.created_by, version_for_outside(link.flow), Run.Trigger.CHAT
    )
