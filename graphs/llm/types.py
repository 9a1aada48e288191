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
    as the reply's text (the API's structured outputs, ``output_config.format``);
    ``thinking`` is the API's too (``{"type": "enabled", "budget_tokens": N}`` or
    ``{"type": "adaptive"}``): the reply then begins with ``thinking`` blocks (or
    ``redacted_thinking``), which a follow-up turn must send back exactly as they came.
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
    thinking: dict[str, Any] | None = None


@dataclass(frozen=True)
class Usage:
    """Tokens spent. ``thinking_tokens`` is the part of ``output_tokens`` the model spent
    thinking: the API bills thinking as output, so prices apply to ``output_tokens`` alone.

    >>> (Usage(10, 50, 30) + Usage(1, 2)).as_dict()
    {'input_tokens': 11, 'output_tokens': 52, 'thinking_tokens': 30}
    >>> Usage(1, 2).as_dict()
    {'input_tokens': 1, 'output_tokens': 2}
    """

    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.thinking_tokens + other.thinking_tokens,
        )

    def as_dict(self) -> dict[str, int]:
        # Only where there was thinking: every log before it, and every call without it,
        # keeps the two figures it always had.
        usage = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        if self.thinking_tokens:
            usage["thinking_tokens"] = self.thinking_tokens
        return usage

    @classmethod
    def from_dict(cls, usage: Any) -> Usage:
        """A usage record as events and states store it (missing figures are 0)."""
        if not isinstance(usage, dict):
            return cls()
        return cls(
            int(usage.get("input_tokens") or 0),
            int(usage.get("output_tokens") or 0),
            int(usage.get("thinking_tokens") or 0),
        )


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

    @property
    def thinking(self) -> str:
        return "".join(b["thinking"] for b in self.content if b.get("type") == "thinking")


class ModelClient(Protocol):
    """Streams one Messages call. ``on_text`` receives text deltas as they arrive, and
    ``on_thinking``, when given (only for a request with ``thinking``), thinking deltas.

    Failures raise ``graphs.errors.ModelError``; the client itself never retries
    (the executor owns the one retry layer).
    """

    name: str

    async def complete(
        self,
        request: ModelRequest,
        on_text: Callable[[str], None],
        *,
        on_thinking: Callable[[str], None] | None = None,
    ) -> ModelResponse: ...
