"""The MCP server proper: the SDK's low-level ``Server`` with two handlers, list and call.

The caller is whoever ``endpoint.py`` authenticated: it leaves the user in the ASGI scope
(``USER_KEY``), which the SDK hands each handler as ``ctx.request`` (a Starlette request).

A call starts a run of the tool's flow (its published version, trigger ``mcp``) and waits
for it without holding a thread (``webapp.runs.follow.until_finished``) for at most
``MCP_WAIT_S``. Then:

- succeeded: the structured content ``{run_id, run_url, status, outputs}``, and the same
  JSON as text (clients without structured content read that);
- failed or cancelled: a tool error (``isError``) with the run's error and its URL;
- still going: a tool error saying so, with the URL to follow it (the run goes on);
- arguments that do not fit, or a user at a run limit: a tool error saying what is wrong,
  input by input, and no run. A name that is no tool of this user's is a protocol error
  (invalid params), as the MCP spec asks for unknown tools.

Errors go back as tool results rather than protocol errors so that the model calling the
tool reads them and can correct itself.
"""

from __future__ import annotations

import io
import json
from typing import Any

import mcp.types as types
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.urls import reverse
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from graphs.errors import FlowInvalid
from webapp.mcp import tools
from webapp.runs import follow, limits
from webapp.runs.models import Run

USER_KEY = "switchyard.user"

INSTRUCTIONS = (
    "Each tool runs one published Switchyard flow with the arguments as its inputs and "
    "answers with the run's outputs as JSON and the URL of the run."
)


def user_of(ctx: ServerRequestContext[Any, Any]) -> Any:
    request = ctx.request
    user = request.scope.get(USER_KEY) if request is not None else None
    if user is None:  # the endpoint lets no request through without one
        raise MCPError(INVALID_PARAMS, "not authenticated")
    return user


def run_url(ctx: ServerRequestContext[Any, Any], run_id: int) -> str:
    """The run's page as an absolute URL, on the host and scheme the client called."""
    path = reverse("run_detail", args=[run_id])
    if ctx.request is None:
        return path
    return ASGIRequest(dict(ctx.request.scope), io.BytesIO()).build_absolute_uri(path)


async def list_tools(
    ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    user = user_of(ctx)
    cursor = params.cursor if params is not None else None
    try:
        page, next_cursor = await database_sync_to_async(tools.page)(user, cursor)
    except ValueError as exc:
        raise MCPError(INVALID_PARAMS, str(exc)) from None
    return types.ListToolsResult(
        tools=[
            types.Tool(
                name=tool.name,
                title=tool.title,
                description=tool.description,
                input_schema=tool.input_schema,
                output_schema=tool.output_schema,
            )
            for tool in page
        ],
        next_cursor=next_cursor,
    )


def tool_error(text: str, structured: dict[str, Any] | None = None) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=text)], structured_content=structured, is_error=True
    )


async def call_tool(
    ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
) -> types.CallToolResult:
    user = user_of(ctx)
    try:
        run = await database_sync_to_async(tools.start)(user, params.name, params.arguments or {})
    except tools.UnknownTool:
        raise MCPError(INVALID_PARAMS, f"Unknown tool: {params.name[:100]}") from None
    except tools.BadArguments as exc:
        return tool_error(f"Invalid arguments: {exc}. Nothing was run.")
    except FlowInvalid as exc:
        return tool_error(f"The flow cannot run: {exc}")
    except limits.RunRefused as exc:
        return tool_error(f"The run was refused: {exc}")
    url = run_url(ctx, run.pk)
    ended = await follow.until_finished(run.pk, settings.MCP_WAIT_S)
    run = await database_sync_to_async(tools.finished)(run.pk)
    result: dict[str, Any] = {"run_id": run.pk, "run_url": url, "status": run.status}
    if not ended:
        return tool_error(
            f"The run is still going after {settings.MCP_WAIT_S} s; it goes on, see {url}",
            result,
        )
    if run.status != Run.Status.SUCCEEDED:
        return tool_error(
            f"The run {run.status}: {run.error or 'no reason recorded'}. See {url}",
            {**result, "error": run.error},
        )
    result["outputs"] = run.outputs
    return types.CallToolResult(
        content=[types.TextContent(text=json.dumps(result, ensure_ascii=False))],
        structured_content=result,
    )


def build() -> Server[Any]:
    """A new server (one per session manager: a manager runs once)."""
    return Server(
        "switchyard",
        title="Switchyard",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        # The 2026 transport looks a called tool's schema up to check Mcp-Param headers; ours
        # declare none, and without this it would list every tool of the user on each call.
        get_tool_input_schema=lambda name: None,
    )
