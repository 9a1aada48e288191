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
    # Prompt caching (graphs.llm.caching): the breakpoints' lifetime ("5m" or "1h"; None
    # sends no cache_control), how many characters at the start of the first user text
    # stay the same from call to call (its template's text before the first variable),
    # and whether the conversation so far is cached too (an agent's growing turns).
    cache_ttl: str | None = None
    cache_prefix: int = 0
    cache_conversation: bool = False


# Usage figures that join a record only once some call has them: every log before they
# were recorded, and every call without them, keeps the figures it always had.
OPTIONAL_USAGE = (
    "thinking_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "cache_creation_1h_input_tokens",
)


@dataclass(frozen=True)
class Usage:
    """Tokens spent. ``thinking_tokens`` is the part of ``output_tokens`` the model spent
    thinking: the API bills thinking as output, so prices apply to ``output_tokens`` alone.

    As the API counts them, ``input_tokens`` are the prompt's tokens after its last cache
    breakpoint; ``cache_creation_input_tokens`` were written to the prompt cache (of them,
    ``cache_creation_1h_input_tokens`` with the one-hour lifetime) and
    ``cache_read_input_tokens`` read from it: the three add up to the whole prompt.

    >>> (Usage(10, 50, 30) + Usage(1, 2)).as_dict()
    {'input_tokens': 11, 'output_tokens': 52, 'thinking_tokens': 30}
    >>> Usage(1, 2).as_dict()
    {'input_tokens': 1, 'output_tokens': 2}
    >>> Usage(5, 2, cache_read_input_tokens=4000).as_dict()
    {'input_tokens': 5, 'output_tokens': 2, 'cache_read_input_tokens': 4000}
    """

    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.thinking_tokens + other.thinking_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.cache_creation_1h_input_tokens + other.cache_creation_1h_input_tokens,
        )

    def as_dict(self) -> dict[str, int]:
        usage = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        for name in OPTIONAL_USAGE:
            if getattr(self, name):
                usage[name] = getattr(self, name)
        return usage

    @classmethod
    def from_dict(cls, usage: Any) -> Usage:
        """A usage record as events and states store it (missing figures are 0)."""
        if not isinstance(usage, dict):
            return cls()
        return cls(
            int(usage.get("input_tokens") or 0),
            int(usage.get("output_tokens") or 0),
            **{name: int(usage.get(name) or 0) for name in OPTIONAL_USAGE},
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
    ``on_start``, when given (only for a request with ``cache_ttl``), receives the usage
    the reply's first event reports (its cache write or read, before any text); a client
    without such an event calls it with what it knows, before returning.

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
        on_start: Callable[[Usage], None] | None = None,
    ) -> ModelResponse: ...
