"""The model seam: what a node asks of a model, and what it gets back.

Content blocks and messages use the Anthropic Messages API's JSON shapes
(``{"type": "text", "text": ...}``, ``{"type": "tool_use", "id", "name", "input"}``)
so that recorded runs are plain JSON and the real client needs no translation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ModelRequest:
    """One Messages call. Fields left at None are not sent (the API's defaults apply).

    ``tool_choice`` is the API's (``{"type": "tool", "name": ...}`` forces that tool);
    ``output_schema`` asks for a reply that is one JSON value fitting this JSON Schema,
    as the reply's text (the API's structured outputs, ``output_config.format``).
    """

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int = 1024
    system: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )

    def as_dict(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}


@dataclass(frozen=True)
class ModelResponse:
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None
    usage: Usage
    # Which of the request's stop_sequences ended the reply, when one did.
    stop_sequence: str | None = None

    @property
    def text(self) -> str:
        return "".join(b["text"] for b in self.content if b.get("type") == "text")

    @property
    def tool_uses(self) -> list[dict[str, Any]]:
        return [b for b in self.content if b.get("type") == "tool_use"]


class ModelClient(Protocol):
    """Streams one Messages call. ``on_text`` receives text deltas as they arrive.

    Failures raise ``graphs.errors.ModelError``; the client itself never retries
    (the executor owns the one retry layer).
    """

    name: str

    async def complete(
        self, request: ModelRequest, on_text: Callable[[str], None]
    ) -> ModelResponse: ...
