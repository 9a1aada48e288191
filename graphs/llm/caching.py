"""Prompt caching: where a request's ``cache_control`` breakpoints go.

The Messages API caches a prompt's prefix up to a block marked with ``cache_control``
(in the prompt's order: tools, then system, then messages). A later call whose prompt
starts with the same prefix reads it at a tenth of the input price; writing it costs a
quarter more than input (twice input for the one-hour lifetime). Breakpoints go, when a
node asks for caching (``ModelRequest.cache_ttl``):

- on the last tool (so the tool definitions are cached),
- on the system prompt,
- on the stable prefix of the first user text: the template's text before its first
  variable (``ModelRequest.cache_prefix`` characters), split off into a block of its own,
- on the last block of the last message, for a conversation that grows each turn (an
  agent loop: ``cache_conversation``), so each turn reads what the turn before wrote.

A prefix shorter than the model's minimum is not cached by the API (its breakpoint is
ignored, nothing is written), so breakpoints are placed only where the prompt up to them
is long enough. Tokens are estimated as characters / 4, rounded down (English prose runs
about four characters a token; a low estimate leaves out a breakpoint the API might have
honoured rather than spending one of the four on a prefix it would ignore). At most four
breakpoints per request, as the API allows; they always share one lifetime here, so the
API's rule that a one-hour breakpoint may not follow a five-minute one always holds.

>>> from graphs.llm.types import ModelRequest
>>> long = "Rules. " * 700  # 4,900 characters: about 1,225 tokens
>>> request = ModelRequest("claude-sonnet-4-6", [{"role": "user", "content": long + "Q: hi"}],
...                        cache_ttl="5m", cache_prefix=len(long))
>>> [b.get("cache_control") for b in cache_params(request)["messages"][0]["content"]]
[{'type': 'ephemeral'}, None]
>>> short = ModelRequest("claude-sonnet-4-6", [{"role": "user", "content": "Hi " + "Q"}],
...                      cache_ttl="5m", cache_prefix=3)
>>> cache_params(short)
{}
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from graphs.llm.types import ModelRequest

TTLS = ("5m", "1h")
MAX_BREAKPOINTS = 4
# The API's minimum cacheable prompt length in tokens, by model name prefix (the longest
# matching prefix wins); other models: DEFAULT_MIN_TOKENS.
MIN_TOKENS = {
    "claude-opus-4-5": 4096,
    "claude-haiku-4-5": 4096,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
}
DEFAULT_MIN_TOKENS = 1024
CHARS_PER_TOKEN = 4


def min_tokens(model: str) -> int:
    """The shortest prompt prefix (tokens) the API caches for ``model``.

    >>> min_tokens("claude-haiku-4-5-20251001"), min_tokens("claude-sonnet-4-6")
    (4096, 1024)
    """
    best = max((key for key in MIN_TOKENS if model.startswith(key)), key=len, default=None)
    return DEFAULT_MIN_TOKENS if best is None else MIN_TOKENS[best]


def estimate_tokens(chars: int) -> int:
    return chars // CHARS_PER_TOKEN


def control(ttl: str) -> dict[str, str]:
    """The ``cache_control`` value for a lifetime (five minutes is the API's default).

    >>> control("1h"), control("5m")
    ({'type': 'ephemeral', 'ttl': '1h'}, {'type': 'ephemeral'})
    """
    return {"type": "ephemeral", "ttl": "1h"} if ttl == "1h" else {"type": "ephemeral"}


def _text_of(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    return len(json.dumps(content, ensure_ascii=False)) if content else 0


def _split_first(message: dict[str, Any], prefix: int) -> tuple[list[dict[str, Any]], int]:
    """The first user message's content as blocks, its first ``prefix`` text characters a
    block of their own; and the index of that block (-1 when it cannot be split)."""
    content = message.get("content")
    blocks = (
        [{"type": "text", "text": content}]
        if isinstance(content, str)
        else [dict(block) for block in content or []]
    )
    if not blocks or blocks[0].get("type") != "text" or prefix <= 0:
        return blocks, -1
    text = blocks[0]["text"]
    if len(text) < prefix:
        return blocks, -1
    head = {"type": "text", "text": text[:prefix]}
    rest = text[prefix:]
    return [head, *([{**blocks[0], "text": rest}] if rest else []), *blocks[1:]], 0


def cache_params(request: ModelRequest) -> dict[str, Any]:
    """The request's ``system``, ``tools`` and ``messages`` with their breakpoints, as the
    API takes them, for those it changes; ``{}`` when none is placed."""
    ttl = request.cache_ttl
    if ttl not in TTLS:
        return {}
    floor = min_tokens(request.model)
    marker = control(ttl)
    params: dict[str, Any] = {}
    placed: list[tuple[str, int]] = []  # (where, index), in prompt order
    length = 0
    if request.tools:
        length += _text_of(request.tools)
        if estimate_tokens(length) >= floor:
            placed.append(("tools", len(request.tools) - 1))
    if request.system:
        length += len(request.system)
        if estimate_tokens(length) >= floor:
            placed.append(("system", 0))
    messages = [dict(m) for m in request.messages]
    if messages and messages[0].get("role") == "user" and request.cache_prefix > 0:
        blocks, at = _split_first(messages[0], request.cache_prefix)
        if at >= 0 and estimate_tokens(length + request.cache_prefix) >= floor:
            messages[0]["content"] = blocks
            placed.append(("prefix", at))
    if request.cache_conversation and messages:
        total = length + sum(_text_of(m.get("content")) for m in messages)
        if estimate_tokens(total) >= floor:
            placed.append(("conversation", len(messages) - 1))
    if not placed:
        return {}
    # Later breakpoints cover more of the prompt: the earliest give way to the limit.
    placed = placed[-MAX_BREAKPOINTS:]
    for where, index in placed:
        if where == "tools":
            tools = [dict(tool) for tool in request.tools]
            tools[index]["cache_control"] = marker
            params["tools"] = tools
        elif where == "system":
            params["system"] = [{"type": "text", "text": request.system, "cache_control": marker}]
        elif where == "prefix":
            head = messages[0]["content"][index]
            messages[0]["content"][index] = {**head, "cache_control": marker}
        else:
            _mark_last(messages[index], marker)
    if any(where in ("prefix", "conversation") for where, _ in placed):
        params["messages"] = messages
    return params


def _mark_last(message: dict[str, Any], marker: dict[str, str]) -> None:
    content = message.get("content")
    blocks: list[dict[str, Any]] = (
        [{"type": "text", "text": content}]
        if isinstance(content, str)
        else [dict(block) for block in content or []]
    )
    if not blocks:
        return
    # Thinking blocks cannot carry cache_control; mark the last block that can.
    for i in range(len(blocks) - 1, -1, -1):
        if blocks[i].get("type") not in ("thinking", "redacted_thinking"):
            blocks[i] = {**blocks[i], "cache_control": marker}
            break
    message["content"] = blocks


def warm_key(request: ModelRequest) -> str | None:
    """What calls sharing a cached prefix have in common (model, lifetime, tools, system and
    the stable prompt prefix, where they carry breakpoints), as a digest; None when the
    request caches no stable prefix. Calls with one key can warm the cache for each other
    (``graphs.warm``).

    >>> from graphs.llm.types import ModelRequest
    >>> long = "Rules. " * 700
    >>> def ask(q):
    ...     return ModelRequest("claude-sonnet-4-6", [{"role": "user", "content": long + q}],
    ...                         cache_ttl="5m", cache_prefix=len(long))
    >>> warm_key(ask("a")) == warm_key(ask("b")) != None
    True
    >>> warm_key(ModelRequest("m", [{"role": "user", "content": "hi"}])) is None
    True
    """
    params = cache_params(request)
    stable: dict[str, Any] = {
        "model": request.model,
        "ttl": request.cache_ttl,
        "tools": params.get("tools"),
        "system": params.get("system"),
    }
    messages = params.get("messages")
    if messages:
        first = messages[0].get("content")
        if isinstance(first, list) and first and first[0].get("cache_control"):
            stable["prefix"] = first[0]["text"]
    if stable["tools"] is None and stable["system"] is None and "prefix" not in stable:
        return None
    encoded = json.dumps(stable, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


def stable_prefix(template: str, rendered: str) -> int:
    """How many characters at the start of ``rendered`` are the template's own text before
    its first variable or tag, the same in every call; 0 when there are none.

    >>> stable_prefix("Rules: be brief. {{ q }}", "Rules: be brief. why?")
    17
    >>> stable_prefix("Rules:\\n{{- q }}", "Rules:why?")  # {{- trims the space before it
    6
    >>> stable_prefix("{{ q }} is it?", "x is it?")
    0
    """
    cut = len(template)
    for opener in ("{{", "{%", "{#"):
        at = template.find(opener)
        if at >= 0:
            cut = min(cut, at)
    prefix = template[:cut]
    if template[cut : cut + 3] in ("{{-", "{%-", "{#-"):
        prefix = prefix.rstrip()
    return len(prefix) if prefix and rendered.startswith(prefix) else 0
