"""What a tool is: a name, a JSON-schema for its input, and an async call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from graphs.net import NO_ALLOW_LIST, AllowList


class ToolError(Exception):
    """The tool refused or failed; the message goes back to the model as an error result."""


@dataclass(frozen=True)
class ToolSettings:
    """Engine settings for what reaches the network: the tools and the ``http`` node.

    Read from the environment by graphs.settings. ``http_allow`` (hosts the deployment
    trusts although they are internal) holds for ``http_get`` and ``http`` alike: they go
    through the same guarded client, ``graphs.net``.
    """

    http_get_enabled: bool = False
    http_get_timeout_s: float = 10.0
    http_get_max_bytes: int = 1_000_000
    http_allow: AllowList = NO_ALLOW_LIST
    http_node_enabled: bool = False
    # The http node's own budget when its timeout_s is unset, and its body caps: a response
    # past the cap fails the node (a cut JSON body is no value).
    http_timeout_s: float = 30.0
    http_max_request_bytes: int = 1_000_000
    http_max_response_bytes: int = 10_000_000
    # MCP tool calls (graphs.tools.mcp): one budget for a whole call (connect, handshake,
    # the call), and the cap on any one response of the server (a bigger one is an error).
    mcp_timeout_s: float = 30.0
    mcp_max_response_bytes: int = 1_000_000


class Tool(Protocol):
    name: str
    description: str
    input_schema: dict[str, Any]
    # Same arguments, same result: an agent using only such tools may be served from the
    # node cache. A tool without this attribute counts as not deterministic.
    deterministic: bool

    async def call(self, args: dict[str, Any], settings: ToolSettings) -> str: ...
