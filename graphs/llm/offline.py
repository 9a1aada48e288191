"""The offline model: what runs when there is no API key.

It is deterministic and says plainly that it is offline, in its model name
(``offline``) and at the start of every reply. It is a stand-in for demos and
tests, not an imitation of Claude: it echoes, picks a listed choice by word
overlap, hands arithmetic to a ``calculator`` tool when one is offered, and, offered a
saved flow as a tool (``flow_...``, ``graphs.subflows``), calls it once with its prompt as
each of the flow's required inputs. Asked for a
shape (a forced tool, or an ``output_schema``) it answers with a value fitting that schema
whose strings say it is offline, choosing among an ``enum``'s options by word overlap.
A stop sequence in its reply ends the reply there, as the API's do. Asked to think, it
begins with one short thinking block saying that it does not think (streamed as thinking,
counted as thinking tokens), so a flow with thinking on runs offline as it would online.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable
from typing import Any

from graphs import structured
from graphs.llm.types import ModelRequest, ModelResponse, Usage

NAME = "offline"
PREFIX = "[offline model] "
THOUGHT = f"{PREFIX}I do not think without an API key; the answer below is all there is."
_ARITHMETIC = re.compile(r"[-+(]*\d[\d\s.+\-*/()%^]*[\d)]")


class OfflineClient:
    """A deterministic local model; ``chunk_delay_s`` paces its stream for live demos."""

    name = NAME

    def __init__(self, chunk_delay_s: float = 0.0):
        self.chunk_delay_s = chunk_delay_s

    async def complete(
        self,
        request: ModelRequest,
        on_text: Callable[[str], None],
        *,
        on_thinking: Callable[[str], None] | None = None,
        on_start: Callable[[Usage], None] | None = None,
    ) -> ModelResponse:
        # It has no prompt cache: caching settings change nothing, and a caller waiting
        # to hear of a cache write hears at once that there was none.
        if on_start is not None:
            on_start(Usage())
        prompt = _last_user_text(request.messages)
        content = self._tool_call(request, prompt) or [
            {"type": "text", "text": self._reply(request, prompt)}
        ]
        stop = "tool_use" if content[0]["type"] == "tool_use" else "end_turn"
        stop_sequence = None
        thought = []
        if request.thinking is not None:
            thought = [{"type": "thinking", "thinking": THOUGHT, "signature": NAME}]
            await self._stream(THOUGHT, on_thinking or _ignore)
        if content[0]["type"] == "text":
            text, stop_sequence = _cut(content[0]["text"], request.stop_sequences)
            content[0]["text"] = text
            stop = "stop_sequence" if stop_sequence is not None else stop
            await self._stream(text, on_text)
        thinking_tokens = _tokens(THOUGHT) if thought else 0
        usage = Usage(
            _tokens(request.system or "") + _tokens(prompt),
            _tokens(str(content)) + thinking_tokens,
            thinking_tokens,
        )
        return ModelResponse(
            model=NAME,
            content=thought + content,
            stop_reason=stop,
            usage=usage,
            stop_sequence=stop_sequence,
        )

    def _reply(self, request: ModelRequest, prompt: str) -> str:
        if request.output_schema is not None:
            return json.dumps(_shaped(request.output_schema, prompt), ensure_ascii=False)
        if results := _tool_results(request.messages):
            return f"{PREFIX}The tools returned: {'; '.join(results)}."
        words = prompt.split()
        summary = " ".join(words[:60]) + (" ..." if len(words) > 60 else "")
        return f"{PREFIX}I cannot think without an API key; here is your prompt back: {summary}"

    def _tool_call(self, request: ModelRequest, prompt: str) -> list[dict[str, Any]] | None:
        forced = _forced_tool(request)
        if forced is not None:
            shaped = _shaped(forced.get("input_schema", {}), prompt)
            key = f"{forced['name']}:{json.dumps(shaped, sort_keys=True)}"
            return [
                {
                    "type": "tool_use",
                    "id": f"offline_{zlib.crc32(key.encode()):08x}",
                    "name": forced["name"],
                    "input": shaped,
                }
            ]
        offered = {tool["name"] for tool in request.tools}
        if _tool_results(request.messages):
            return None
        flow_tool = next((t for t in request.tools if t["name"].startswith("flow_")), None)
        if "calculator" not in offered and flow_tool is not None:
            required = flow_tool.get("input_schema", {}).get("required", [])
            return [
                {
                    "type": "tool_use",
                    "id": f"offline_{zlib.crc32(prompt.encode()):08x}",
                    "name": flow_tool["name"],
                    "input": dict.fromkeys(required, prompt),
                }
            ]
        if "calculator" not in offered:
            return None
        found = [m.group(0).strip() for m in _ARITHMETIC.finditer(prompt)]
        expression = max(found, key=len, default="")
        if not re.search(r"[-+*/%^]", expression.lstrip("-+")):
            return None
        return [
            {
                "type": "tool_use",
                "id": f"offline_{zlib.crc32(expression.encode()):08x}",
                "name": "calculator",
                "input": {"expression": expression.replace("^", "**")},
            }
        ]

    async def _stream(self, text: str, on_text: Callable[[str], None]) -> None:
        for chunk in re.findall(r"\S+\s*|\s+", text):
            on_text(chunk)
            if self.chunk_delay_s:
                # Imported here (a running loop has it loaded): checking a flow makes an
                # offline client, and should not load asyncio for it.
                import asyncio

                await asyncio.sleep(self.chunk_delay_s)


def _ignore(_: str) -> None:
    pass


def _forced_tool(request: ModelRequest) -> dict[str, Any] | None:
    choice = request.tool_choice or {}
    if choice.get("type") != "tool":
        return None
    return next((t for t in request.tools if t.get("name") == choice.get("name")), None)


def _shaped(schema: dict[str, Any], prompt: str) -> Any:
    return structured.example(schema, pick=lambda options: _closest(prompt, options))


def _cut(text: str, stops: list[str]) -> tuple[str, str | None]:
    """``text`` up to the earliest stop sequence in it, and which one that was."""
    found = [(text.find(stop), stop) for stop in stops if stop in text]
    if not found:
        return text, None
    at, stop = min(found)
    return text[:at], stop


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message["role"] != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            return content
        texts = [b.get("text", "") for b in content if b.get("type") == "text"]
        if texts:
            return "\n".join(texts)
    return ""


def _tool_results(messages: list[dict[str, Any]]) -> list[str]:
    last = messages[-1]["content"] if messages else ""
    if isinstance(last, str):
        return []
    return [
        b["content"] if isinstance(b["content"], str) else json.dumps(b["content"])
        for b in last
        if b.get("type") == "tool_result"
    ]


def _closest(text: str, choices: list[Any]) -> Any:
    words = set(re.findall(r"[a-z0-9]+", text.lower()))

    def overlap(choice: Any) -> int:
        return len(words & set(re.findall(r"[a-z0-9]+", str(choice).lower())))

    return max(choices, key=overlap)


def _tokens(text: str) -> int:
    return len(text.split())
