"""Tools the `agent` node can offer the model.

`BUILTIN_TOOLS` is an explicit registry of the tools shipped with the engine. The agent node
takes any `Mapping[str, Tool]`, so callers can extend it (e.g. with flows exposed as tools)
without touching this module: anything with a name, description, input_schema and an async
`call(args, settings) -> str` is a tool. Tools of MCP servers (``graphs.tools.mcp``) are
bound per run from the servers the host lends (``Services.mcp``), not registered here.
"""

from __future__ import annotations

from graphs.tools.base import Tool, ToolError, ToolSettings
from graphs.tools.calculator import Calculator
from graphs.tools.http_get import HttpGet

BUILTIN_TOOLS: dict[str, Tool] = {
    "calculator": Calculator(),
    "http_get": HttpGet(),
}

__all__ = ["BUILTIN_TOOLS", "Calculator", "HttpGet", "Tool", "ToolError", "ToolSettings"]
