"""Tools of MCP servers (Streamable HTTP), offered to an ``agent`` like the built-in ones.

An agent names one as ``mcp:<server>/<tool>``. The host lends the servers a run may use
through ``Services.mcp`` (name -> ``McpServer``, with the tools its last refresh listed);
the engine knows nothing of who registered them. The model sees the tool as
``mcp__<server>__<tool>`` (the API's tool names allow no ``:`` or ``/``).

Every request goes through the official ``mcp`` SDK's client, over an ``httpx2`` client
whose transport (``GuardedTransport``) applies ``graphs.net``'s SSRF policy to each request
(the same checks and allow-list as the ``http`` node: the host is resolved once, every
address checked, the connection pinned to a checked address) and caps each response body.
A whole call (connect, handshake, call) has one deadline, ``ToolSettings.mcp_timeout_s``.

Sessions. A run's calls share its ``McpSessions``: one client session per server URL and
credential, opened (``initialize``) by the first call that needs it, reused by every later
call of the run, parallel agents' included (the SDK matches each answer to its request by
id), and closed when the run ends (the SDK's ``DELETE`` of the session). A server that has
dropped the session (404 on its id, per the Streamable HTTP spec) gets one new handshake,
and the call is sent again: the server refused it before running it. Without a run's
sessions (a refresh, a lone call), a call opens and closes a session of its own.

A server's ``auth`` names a credential (``graphs.credentials``); its value is looked up when
a call is made, goes only into that call's request headers, and is cut out of anything the
server sends back, so neither the model nor an event nor an error can carry it.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphs import net
from graphs.credentials import (
    HTTP_KINDS,
    NO_CREDENTIALS,
    CredentialError,
    CredentialSource,
    auth_headers,
    redact,
    secret_forms,
)
from graphs.tools.base import ToolError, ToolSettings

if TYPE_CHECKING:
    import httpx2

log = logging.getLogger(__name__)

PREFIX = "mcp:"
MODEL_PREFIX = "mcp__"
# A server's name: what follows ``mcp:`` in a tool name. The identifier charset of node ids
# and credential names, at most 40 characters so the model's tool name has room.
SERVER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,39}$")
SERVER_NAME_HELP = "a letter or _, then letters, digits, _ or -, at most 40 characters"
# The MCP specification's tool names; a listed tool with another name is left out.
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
MAX_TOOLS = 100
MAX_DESCRIPTION_CHARS = 2_000
MAX_SCHEMA_CHARS = 20_000
# The API's tool names: ^[a-zA-Z0-9_-]{1,64}$.
_MODEL_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_MODEL_NAME_MAX = 64


@dataclass(frozen=True)
class McpToolInfo:
    """One tool a server listed: its name, description and input schema (JSON Schema)."""

    name: str
    description: str = ""
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> McpToolInfo:
        return cls(
            str(data["name"]),
            str(data.get("description") or ""),
            dict(data.get("input_schema") or {"type": "object"}),
        )


@dataclass(frozen=True)
class McpServer:
    """A registered server: its URL, the credential its calls carry (by name), its tools."""

    name: str
    url: str
    auth: str | None = None
    tools: tuple[McpToolInfo, ...] = ()

    def tool(self, name: str) -> McpToolInfo | None:
        return next((tool for tool in self.tools if tool.name == name), None)


def reference(name: str) -> tuple[str, str] | None:
    """``(server, tool)`` of an ``mcp:<server>/<tool>`` name, else None (not an MCP tool).

    >>> reference("mcp:docs/search")
    ('docs', 'search')
    >>> reference("calculator") is None
    True
    """
    if not name.startswith(PREFIX):
        return None
    server, _, tool = name[len(PREFIX) :].partition("/")
    return server, tool


def reference_problem(name: str) -> str | None:
    """What is wrong with the shape of an ``mcp:`` tool name, or None.

    >>> reference_problem("mcp:docs")
    "write MCP tools as mcp:<server>/<tool>, got 'mcp:docs'"
    """
    found = reference(name)
    if found is None or not found[1]:
        return f"write MCP tools as mcp:<server>/<tool>, got {name!r}"
    server, tool = found
    if not SERVER_NAME.match(server):
        return f"server name {server!r} is not {SERVER_NAME_HELP}"
    if not TOOL_NAME.match(tool):
        return f"tool name {tool!r} is not an MCP tool name (letters, digits, _ . -)"
    return None


def tool_name(server: str, tool: str) -> str:
    """The name under which an agent picks a server's tool."""
    return f"{PREFIX}{server}/{tool}"


def model_name(server: str, tool: str) -> str:
    """The name the model sees: API tool names allow only letters, digits, _ and -.

    >>> model_name("docs", "search.v2")
    'mcp__docs__search_v2'
    """
    return _MODEL_NAME_CHARS.sub("_", f"{MODEL_PREFIX}{server}__{tool}")[:_MODEL_NAME_MAX]


def shown_name(name: str) -> str:
    """A tool's name as the model used it, shown as picked: ``mcp:<server>/<tool>`` for an
    MCP tool (the server's name ends at its first ``__``; a tool's ``.`` reads as ``_``),
    else as it is.

    >>> shown_name("mcp__docs__search_v2"), shown_name("calculator")
    ('mcp:docs/search_v2', 'calculator')
    """
    if not name.startswith(MODEL_PREFIX):
        return name
    server, _, tool = name[len(MODEL_PREFIX) :].partition("__")
    return tool_name(server, tool) if server and tool else name


def lookup_problem(name: str, servers: Mapping[str, McpServer]) -> str | None:
    """Why the ``mcp:`` tool `name` is not among `servers`' listed tools, or None."""
    problem = reference_problem(name)
    if problem is not None:
        return problem
    server_name, tool = reference(name) or ("", "")
    server = servers.get(server_name)
    if server is None:
        known = ", ".join(sorted(servers)) or "none"
        return f"no MCP server named {server_name!r} is registered (known: {known})"
    if server.tool(tool) is None:
        return (
            f"MCP server {server_name!r} lists no tool {tool!r} "
            "(refresh its tools on the MCP servers page)"
        )
    return None


def listing(servers: Mapping[str, McpServer]) -> list[McpToolInfo]:
    """Every listed tool of `servers`, named ``mcp:<server>/<tool>``, for a tools picker."""
    return [
        McpToolInfo(tool_name(server.name, tool.name), tool.description, tool.input_schema)
        for server in sorted(servers.values(), key=lambda s: s.name)
        for tool in server.tools
    ]


class McpTool:
    """One tool of one server, bound to the credentials of the run that calls it."""

    deterministic: bool = False  # another server's answers may change at any time

    def __init__(
        self,
        server: McpServer,
        tool: McpToolInfo,
        credentials: CredentialSource = NO_CREDENTIALS,
        sessions: McpSessions | None = None,
    ):
        self.server = server
        self.tool = tool
        self.credentials = credentials
        self.sessions = sessions
        self.name = model_name(server.name, tool.name)
        self.description = tool.description or f"{tool.name} (MCP server {server.name})"
        self.input_schema = tool.input_schema

    async def call(self, args: dict[str, Any], settings: ToolSettings) -> str:
        if not isinstance(args, dict):
            raise ToolError("the tool's input must be an object")
        headers, secrets = _auth(self.server, self.credentials)
        try:
            if self.sessions is None:
                text, is_error = await call_tool(
                    self.server.url, self.tool.name, args, settings, headers
                )
            else:
                text, is_error = await self.sessions.call(
                    self.server.url, self.tool.name, args, settings, headers
                )
        except ToolError as exc:
            raise ToolError(redact(str(exc), secrets)) from None
        text = redact(text, secrets)
        if is_error:
            raise ToolError(text or "the MCP tool reported an error")
        return text


def bind(
    name: str,
    servers: Mapping[str, McpServer],
    credentials: CredentialSource,
    sessions: McpSessions | None = None,
) -> McpTool:
    """The tool an agent named ``mcp:<server>/<tool>``, calling through the run's
    `sessions` (None: a session per call); ToolError naming why not."""
    problem = lookup_problem(name, servers)
    if problem is not None:
        raise ToolError(f"tool {name!r}: {problem}")
    server_name, tool = reference(name) or ("", "")
    server = servers[server_name]
    return McpTool(server, server.tool(tool) or McpToolInfo(tool), credentials, sessions)


async def tools_of(
    server: McpServer, settings: ToolSettings, credentials: CredentialSource = NO_CREDENTIALS
) -> list[McpToolInfo]:
    """What `server` lists now, asked with its credential (a refresh); ToolError naming why
    not, never with the credential's value in it."""
    headers, secrets = _auth(server, credentials)
    try:
        found = await list_tools(server.url, settings, headers)
    except ToolError as exc:
        raise ToolError(redact(str(exc), secrets)) from None
    # A server may echo what it was sent; what is stored and shown must not hold it.
    return [
        McpToolInfo(
            tool.name,
            redact(tool.description, secrets),
            json.loads(redact(json.dumps(tool.input_schema), secrets)),
        )
        for tool in found
    ]


def _auth(
    server: McpServer, credentials: CredentialSource
) -> tuple[list[tuple[str, str]], list[str]]:
    """The headers of the server's credential, and the strings to cut out of its answers."""
    if not server.auth:
        return [], []
    secret = credentials.look_up(server.auth)
    where = f"MCP server {server.name!r}: credential {server.auth!r}"
    if secret is None:
        raise ToolError(f"{where} is not available to this run")
    if secret.kind not in HTTP_KINDS:
        raise ToolError(f"{where} is a {secret.kind} credential, which cannot authenticate HTTP")
    try:
        headers = auth_headers(secret.kind, secret.value, header=secret.header)
    except CredentialError as exc:
        raise ToolError(f"{where}: {exc}") from None
    return headers, secret_forms(secret, headers)


async def list_tools(
    url: str, settings: ToolSettings, headers: list[tuple[str, str]] | None = None
) -> list[McpToolInfo]:
    """The tools the server at `url` lists (all pages, at most ``MAX_TOOLS``), capped in
    size; ToolError naming what went wrong."""

    async def go(session: Any) -> list[McpToolInfo]:
        found: list[McpToolInfo] = []
        cursor: str | None = None
        from mcp import types

        for _ in range(20):  # pages
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            result = await session.list_tools(params=params)
            for tool in result.tools:
                info = _info(tool)
                if info is not None and len(found) < MAX_TOOLS:
                    found.append(info)
            cursor = result.next_cursor
            if not cursor or len(found) >= MAX_TOOLS:
                break
        return found

    return await _with_session(url, settings, headers or [], go)


def _info(tool: Any) -> McpToolInfo | None:
    if not TOOL_NAME.match(tool.name or ""):
        return None
    schema = tool.input_schema if isinstance(tool.input_schema, dict) else {}
    if schema.get("type") != "object":
        # The Messages API takes an object's schema only (as MCP specified until 2026).
        schema = {"type": "object"}
    if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        schema = {"type": "object", "description": "(the server's schema is too large to keep)"}
    description = (tool.description or "")[:MAX_DESCRIPTION_CHARS]
    return McpToolInfo(tool.name, description, schema or {"type": "object"})


async def call_tool(
    url: str,
    name: str,
    args: dict[str, Any],
    settings: ToolSettings,
    headers: list[tuple[str, str]] | None = None,
) -> tuple[str, bool]:
    """Call tool `name` of the server at `url`: its result as text, and whether the server
    marked it an error. ToolError when the call itself failed (refused, timed out, too big)."""

    async def go(session: Any) -> tuple[str, bool]:
        result = await session.call_tool(name, args)
        return _text(result), bool(result.is_error)

    return await _with_session(url, settings, headers or [], go)


def _text(result: Any) -> str:
    """A call's content as the model reads it: text blocks as they are, others as JSON."""
    parts: list[str] = []
    for block in result.content:
        if getattr(block, "type", None) == "text":
            parts.append(block.text)
        elif getattr(block, "type", None) == "image":
            parts.append(f"[image, {block.mime_type}]")
        else:
            parts.append(json.dumps(block.model_dump(mode="json", exclude_none=True)))
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


# The SDK's client logs each message it reads at DEBUG: what a server sends, which may echo
# a credential (cut out of results, but not out of those lines).
_WIRE_LOGGERS = ("mcp.client.streamable_http", "mcp.client.session", "mcp.shared.session")


class _NoWireDumps(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.INFO


_NO_WIRE_DUMPS = _NoWireDumps()


def _quiet_wire_logs() -> None:
    for name in _WIRE_LOGGERS:
        logger = logging.getLogger(name)
        if _NO_WIRE_DUMPS not in logger.filters:
            logger.addFilter(_NO_WIRE_DUMPS)


async def _with_session(
    url: str, settings: ToolSettings, headers: list[tuple[str, str]], work: Any
) -> Any:
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    try:
        net.destination(url, allow=settings.http_allow)
    except net.NetError as exc:
        raise ToolError(f"MCP server {url}: {exc}") from None
    _quiet_wire_logs()
    transport = guarded_transport(settings.http_allow, settings.mcp_max_response_bytes)
    timeout = settings.mcp_timeout_s
    try:
        async with asyncio.timeout(timeout):
            async with (
                httpx2.AsyncClient(
                    transport=transport,
                    headers=dict(headers),
                    timeout=httpx2.Timeout(timeout),
                    trust_env=False,
                    follow_redirects=False,
                ) as client,
                streamable_http_client(
                    url, http_client=client, max_sse_event_size=settings.mcp_max_response_bytes
                ) as (read, write),
                ClientSession(read, write, read_timeout_seconds=timeout) as session,
            ):
                await session.initialize()
                return await work(session)
    except TimeoutError:
        raise ToolError(
            transport.failure or f"MCP server {url}: no answer within {timeout:g}s"
        ) from None
    except ToolError:
        raise
    except Exception as exc:  # the SDK's, httpx2's, or ours through them
        raise ToolError(transport.failure or f"MCP server {url}: {_describe(exc)}") from None


# The refusal of the transport (SSRF policy, size cap) that failed the call of this context:
# the SDK runs each request's HTTP exchange in a task with its sender's context, so a call
# sees its own refusal, not another's made over the same session meanwhile.
_FAILURE: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "mcp_failure", default=None
)
# What a call waits at most for its session to close, when the run ends.
CLOSE_TIMEOUT_S = 5.0
_SessionKey = tuple[str, tuple[tuple[str, str], ...]]


class McpSessions:
    """The MCP client sessions of one run, one per server URL and credential headers.

    ``call`` opens a server's session on first use and reuses it after; ``aclose`` (the run
    ended, however) closes them all. One instance must serve one run only: a session is
    never shared across runs, nor across credentials (the headers are part of the key).
    """

    def __init__(self) -> None:
        self._open: dict[_SessionKey, _Session] = {}
        self.closed = False
        # Handshakes made (sessions opened), for a host's counters and the tests.
        self.opened = 0

    async def call(
        self,
        url: str,
        name: str,
        args: dict[str, Any],
        settings: ToolSettings,
        headers: list[tuple[str, str]] | None = None,
    ) -> tuple[str, bool]:
        """As ``call_tool``, over the run's session with the server at `url`."""
        headers = headers or []
        key = (url, tuple(headers))
        timeout = settings.mcp_timeout_s
        box: list[str] = []
        token = _FAILURE.set(box)
        try:
            async with asyncio.timeout(timeout):
                return await self._call(key, url, name, args, settings, headers)
        except TimeoutError:
            failure = box[0] if box else None
            raise ToolError(failure or f"MCP server {url}: no answer within {timeout:g}s") from None
        except ToolError:
            raise
        except Exception as exc:  # the SDK's, httpx2's, or ours through them
            raise ToolError(box[0] if box else f"MCP server {url}: {_describe(exc)}") from None
        finally:
            _FAILURE.reset(token)

    async def _call(
        self,
        key: _SessionKey,
        url: str,
        name: str,
        args: dict[str, Any],
        settings: ToolSettings,
        headers: list[tuple[str, str]],
    ) -> tuple[str, bool]:
        from mcp.shared.exceptions import MCPError

        session = await self._session(key, url, settings, headers)
        try:
            result = await session.request(name, args)
        except MCPError as exc:
            if not _dropped(exc):
                raise
            # The server forgot the session (restarted, expired it): the call never ran
            # there. One new handshake, and the call once more.
            await self._forget(key, session)
            session = await self._session(key, url, settings, headers)
            result = await session.request(name, args)
        return _text(result), bool(result.is_error)

    async def _session(
        self, key: _SessionKey, url: str, settings: ToolSettings, headers: list[tuple[str, str]]
    ) -> _Session:
        if self.closed:
            raise ToolError(f"MCP server {url}: the run has ended")
        session = self._open.get(key)
        if session is None or session.ended:
            if session is not None:
                await self._forget(key, session)
            try:
                net.destination(url, allow=settings.http_allow)
            except net.NetError as exc:
                raise ToolError(f"MCP server {url}: {exc}") from None
            _quiet_wire_logs()
            session = _Session(url, settings, headers)
            self._open[key] = session
            self.opened += 1
        await session.wait_ready()
        return session

    async def _forget(self, key: _SessionKey, session: _Session) -> None:
        if self._open.get(key) is session:
            del self._open[key]
        await session.close()

    async def aclose(self) -> None:
        """Close every session (the run is over); calls after this are refused."""
        self.closed = True
        sessions, self._open = list(self._open.values()), {}
        if sessions:
            await asyncio.gather(*(session.close() for session in sessions))


def _dropped(exc: Any) -> bool:
    """Whether an error is the SDK's report of a 404 on the session's id."""
    from mcp.types import INVALID_REQUEST

    return bool(exc.code == INVALID_REQUEST and exc.message == "Session terminated")


class _Session:
    """One open client session, held by a task of its own: the SDK's context managers
    (anyio task groups) must be left by the task that entered them, and the calls that
    use the session come from many tasks."""

    def __init__(self, url: str, settings: ToolSettings, headers: list[tuple[str, str]]):
        self.url = url
        self.transport = guarded_transport(settings.http_allow, settings.mcp_max_response_bytes)
        self.timeout = settings.mcp_timeout_s
        self.ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.stop = asyncio.Event()
        self.ended = False
        # A fresh context: the holder outlives the call that opened it, whose failure
        # box must not collect the refusals of later requests (the GET stream's).
        self.task = asyncio.get_running_loop().create_task(
            self._hold(headers), context=contextvars.Context()
        )

    async def _hold(self, headers: list[tuple[str, str]]) -> None:
        import httpx2
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        timeout = self.timeout
        try:
            async with (
                httpx2.AsyncClient(
                    transport=self.transport,
                    headers=dict(headers),
                    timeout=httpx2.Timeout(timeout),
                    trust_env=False,
                    follow_redirects=False,
                ) as client,
                streamable_http_client(
                    self.url,
                    http_client=client,
                    max_sse_event_size=self.transport.max_bytes,
                ) as (read, write),
                ClientSession(read, write, read_timeout_seconds=timeout) as session,
            ):
                async with asyncio.timeout(timeout):
                    await session.initialize()
                self.ready.set_result(session)
                await self.stop.wait()
        except Exception as exc:  # the SDK's, httpx2's, or ours through them
            if not self.ready.done():
                failure = self.transport.failure
                if isinstance(exc, TimeoutError):
                    failure = failure or f"MCP server {self.url}: no answer within {timeout:g}s"
                self.ready.set_exception(
                    ToolError(failure or f"MCP server {self.url}: {_describe(exc)}")
                )
            else:
                log.info("MCP session with %s ended: %s", self.url, _describe(exc))
        finally:
            self.ended = True
            if not self.ready.done():
                self.ready.set_exception(ToolError(f"MCP server {self.url}: the session closed"))

    async def wait_ready(self) -> None:
        # Shielded: a caller's deadline must not cancel the handshake others wait for.
        await asyncio.shield(self.ready)

    async def request(self, name: str, args: dict[str, Any]) -> Any:
        """Call a tool over the session; a session that breaks meanwhile fails the call."""
        session = self.ready.result()
        call = asyncio.ensure_future(session.call_tool(name, args))
        try:
            await asyncio.wait({call, self.task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not call.done():
                call.cancel()
        if not call.done():
            await asyncio.gather(call, return_exceptions=True)
            raise ToolError(self.transport.failure or f"MCP server {self.url}: the session closed")
        return call.result()

    async def close(self) -> None:
        """Leave the session (the SDK sends its DELETE), within a bounded wait."""
        self.stop.set()
        if self.ready.done() and not self.ready.cancelled():
            self.ready.exception()  # retrieved: a failed handshake was reported already
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await asyncio.shield(self.task)
        except TimeoutError:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


def _describe(exc: BaseException) -> str:
    """An error as one line; an exception group (the SDK's task groups) by its first leaf."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:500]


class _CappedStream:
    """A response body that stops with ``net.TooLarge`` past `cap` bytes."""

    def __init__(self, inner: Any, cap: int, owner: _Guarded):
        self.inner = inner
        self.cap = cap
        self.owner = owner

    async def __aiter__(self) -> Any:
        size = 0
        async for chunk in self.inner:
            size += len(chunk)
            if size > self.cap:
                message = f"the MCP server's response is over the {self.cap}-byte limit"
                self.owner.refused(message)
                raise net.TooLarge(message)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


def guarded_transport(allow: net.AllowList, max_bytes: int) -> Any:
    """An httpx2 transport that sends each request only where ``graphs.net`` allows.

    The host is resolved once and every address checked (the allow-list may permit
    internal ones); the connection goes to the checked address, the name travelling in the
    Host header and, for https, as the TLS server name. Each response body is capped.
    Its ``failure`` keeps the first refusal, for the error a caller reports: the SDK may
    wrap or swallow what a transport raises.
    """
    return _guarded_class()(allow, max_bytes)


_CLASSES: dict[str, type] = {}


def _guarded_class() -> type:
    # Subclassed when first used: httpx2 loads slowly, and the engine imports this module
    # whether or not a flow has MCP tools.
    if not _CLASSES:
        import httpx2

        _CLASSES["stream"] = type("CappedStream", (_CappedStream, httpx2.AsyncByteStream), {})
        _CLASSES["transport"] = type("GuardedTransport", (_Guarded, httpx2.AsyncBaseTransport), {})
    return _CLASSES["transport"]


class _Guarded:
    failure: str | None

    def __init__(self, allow: net.AllowList, max_bytes: int):
        import httpx2

        self.allow = allow
        self.max_bytes = max_bytes
        self.failure = None
        self.inner = httpx2.AsyncHTTPTransport(trust_env=False)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        import httpx2

        try:
            host, port = net.destination(str(request.url), allow=self.allow)
            addresses = await net.resolve_and_check(host, port, allow=self.allow)
        except net.NetError as exc:
            self.refused(f"MCP server {request.url.host}: {exc}")
            raise
        original = request.url
        request.headers["Host"] = original.netloc.decode("ascii")
        # Compressed bodies would be inflated before the cap applies.
        request.headers["Accept-Encoding"] = "identity"
        if original.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        failure: Exception | None = None
        for address in addresses:
            request.url = original.copy_with(host=address)
            try:
                response = await self.inner.handle_async_request(request)
            except httpx2.ConnectError as exc:
                failure = exc
                continue
            finally:
                request.url = original
            response.stream = _CLASSES["stream"](response.stream, self.max_bytes, self)  # type: ignore[assignment]
            return response
        message = f"MCP server {host}: could not connect ({failure})"
        self.refused(message)
        raise httpx2.ConnectError(message, request=request)

    def refused(self, message: str) -> None:
        """Keep the first refusal, for the transport and for the call it failed."""
        self.failure = self.failure or message
        box = _FAILURE.get()
        if box is not None and not box:
            box.append(message)

    async def aclose(self) -> None:
        await self.inner.aclose()
