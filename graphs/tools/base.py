"""What a tool is: a name, a JSON-schema for its input, and an async call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class ToolError(Exception):
    """The tool refused or failed; the message goes back to the model as an error result."""


@dataclass(frozen=True)
class ToolSettings:
    """Engine settings a tool may consult (read from the environment by graphs.settings)."""

    http_get_enabled: bool = False
    http_get_timeout_s: float = 10.0
    http_get_max_bytes: int = 1_000_000


class Tool(Protocol):
    name: str
    description: str
    input_schema: dict[str, Any]
    # Same arguments, same result: an agent using only such tools may be served from the
    # node cache. A tool without this attribute counts as not deterministic.
    deterministic: bool

    async def call(self, args: dict[str, Any], settings: ToolSettings) -> str: ...
