"""``http``: calls an HTTP API and emits its ``status``, ``headers`` and ``body``.

The URL, header values, query values and the body are templates over the node's ports, so
a flow can call ``https://api.example.com/items/{{ id }}``. Every request goes through the
SSRF-guarded client (``graphs.net``) the ``http_get`` tool uses: internal addresses are
refused unless the deployment allow-lists them, every redirect is checked again, and
bodies are capped both ways. The node is off unless ``SWITCHYARD_HTTP_NODE_ENABLED`` is set.

A response whose Content-Type is JSON comes out decoded on ``body``; any other as text. A
status of 400 or more fails the node (408, 425, 429 and 5xx as retryable, honouring
``Retry-After``) unless ``fail_on_status`` is off, when it goes out on ``status`` like any
other. Not cached by default: the same request may answer differently each time.

>>> from graphs.nodes import NODE_TYPES
>>> http = NODE_TYPES["http"]
>>> config = http.Config.model_validate(
...     {"url": "https://api.example.com/items/{{ id }}",
...      "headers": [{"name": "Authorization", "value": "Bearer {{ token }}"}]}
... )
>>> sorted(http.input_ports(config)), sorted(http.output_ports(config))
(['id', 'token'], ['body', 'headers', 'status'])
"""

from __future__ import annotations

import email.utils
import json
import re
import time
import urllib.parse
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from graphs import credentials, net
from graphs.errors import NodeError
from graphs.nodes.base import (
    CommonConfig,
    FieldProblem,
    NodeContext,
    NodeType,
    Services,
    template_ports,
)

DISABLED_MESSAGE = "the http node is disabled; set SWITCHYARD_HTTP_NODE_ENABLED=1 to allow it"
# RFC 9110 token: what a header name may be.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Set by the client for the pinned connection and the capped body; a flow may not.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "accept-encoding"}
)
_RETRYABLE_STATUSES = frozenset({408, 425, 429})
_TEMPLATE_CHARS = 100_000


class Pair(BaseModel):
    """A header, query parameter or form field: a name and a value (a template)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=200, title="Name")
    value: str = Field(
        default="",
        max_length=_TEMPLATE_CHARS,
        title="Value (template)",
        json_schema_extra={"widget": "template", "placeholder": "{{ token }}"},
    )


class HttpConfig(CommonConfig):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = Field(
        default="GET", description="The HTTP method."
    )
    url: str = Field(
        min_length=1,
        max_length=net.MAX_URL_CHARS,
        title="URL",
        description="An http:// or https:// URL, a template over the ports, e.g. "
        "https://api.example.com/items/{{ id }}. Internal addresses are refused unless the "
        "server allow-lists them.",
        json_schema_extra={"widget": "template", "rows": 1},
    )
    headers: list[Pair] = Field(
        default_factory=list,
        max_length=50,
        description="Request headers; values are templates.",
        json_schema_extra={"widget": "rows"},
    )
    query: list[Pair] = Field(
        default_factory=list,
        max_length=100,
        description="Query parameters added to the URL (encoded for you); values are templates.",
        json_schema_extra={"widget": "rows"},
    )
    body_type: Literal["none", "json", "form", "text"] = Field(
        default="none",
        title="Body",
        description="json: the body template must render to JSON, sent as application/json. "
        "form: the fields below, form-encoded. text: the body as rendered.",
    )
    body: str | None = Field(
        default=None,
        max_length=1_000_000,
        title="Body template",
        description='json or text: a template, e.g. {"query": {{ question | tojson }}}.',
        json_schema_extra={
            "widget": "template",
            "rows": 6,
            "when": {"body_type": ["json", "text"]},
        },
    )
    form: list[Pair] = Field(
        default_factory=list,
        max_length=100,
        description="form: the fields sent; values are templates.",
        json_schema_extra={"widget": "rows", "when": {"body_type": ["form"]}},
    )
    auth: str | None = Field(
        default=None,
        max_length=100,
        pattern=credentials.NAME.pattern,
        title="Auth (credential)",
        description="The name of a credential (Settings, Credentials) whose secret is added "
        "as the request's headers when it runs: bearer, basic, API key or custom headers. "
        "The secret never enters the flow, its events or its outputs.",
        json_schema_extra={"widget": "code"},
    )
    fail_on_status: bool = Field(
        default=True,
        title="Fail on error status",
        description="A status of 400 or more fails the node (429 and 5xx are retried under "
        "retries, after Retry-After). Off: the status goes out on status.",
    )


class HttpNode(NodeType):
    name = "http"
    label = "HTTP request"
    description = "Calls an HTTP API; emits its `status`, `headers` and `body` (JSON decoded)."
    category = "io"
    Config = HttpConfig
    default_config = {"method": "GET", "url": "https://example.com/"}

    def templates(self, config: HttpConfig) -> dict[str, str]:
        # By field, as a form shows a problem: a rows field's values, one per line. Each
        # value is a whole template, so joined they parse exactly when each of them does
        # (a value's own problem shows again when it renders, naming its row).
        found = {"url": config.url}
        if config.body_type in ("json", "text") and config.body:
            found["body"] = config.body
        fields = ["headers", "query"] + (["form"] if config.body_type == "form" else [])
        for field in fields:
            values = [pair.value for pair in getattr(config, field) if pair.value]
            if values:
                found[field] = "\n".join(values)
        return found

    def input_ports(self, config: HttpConfig) -> frozenset[str]:
        return template_ports(self.templates(config))

    def output_ports(self, config: HttpConfig) -> frozenset[str]:
        return frozenset({"status", "headers", "body"})

    def problems(self, config: HttpConfig, services: Services | None) -> list[FieldProblem]:
        found: list[FieldProblem] = []
        names: set[str] = set()
        for pair in config.headers:
            lowered = pair.name.lower()
            if not _TOKEN.match(pair.name):
                found.append(FieldProblem("headers", f"{pair.name!r} is not a header name"))
            elif lowered in _RESERVED_HEADERS:
                found.append(FieldProblem("headers", f"header {pair.name!r} is set by the server"))
            elif lowered in names:
                found.append(FieldProblem("headers", f"header {pair.name!r} appears twice"))
            names.add(lowered)
        if config.body_type in ("json", "text") and not config.body:
            found.append(FieldProblem("body", f"a {config.body_type} body needs a body template"))
        if config.body_type == "form" and not config.form:
            found.append(FieldProblem("form", "a form body needs at least one field"))
        if config.body_type != "none" and config.method in ("GET", "HEAD"):
            found.append(FieldProblem("body_type", f"a {config.method} request sends no body"))
        # Its address is checked when it runs, against the running server's allow-list;
        # its shape now, as far as the text before any template shows it.
        literal, templated, _ = config.url.partition("{")
        scheme, sep, _ = literal.partition("://")
        try:
            if not templated:
                net.check_url_shape(config.url)
            elif sep and scheme.lower() not in ("http", "https"):
                net.check_url_shape(f"{scheme}://example.com/")
        except net.NetError as exc:
            found.append(FieldProblem("url", f"url: {exc}"))
        return found

    async def run(self, ctx: NodeContext, config: HttpConfig, inputs: dict) -> dict:
        settings = ctx.services.tool_settings
        if not settings.http_node_enabled:
            raise NodeError(DISABLED_MESSAGE)
        url = (await ctx.render("url", config.url, inputs)).strip()
        headers = [
            (pair.name, await ctx.render(f"headers.{pair.name}", pair.value, inputs))
            for pair in config.headers
        ]
        query = [
            (pair.name, await ctx.render(f"query.{pair.name}", pair.value, inputs))
            for pair in config.query
        ]
        private: list[str] = []
        forms: list[str] = []
        if config.auth:
            headers, private, forms = _with_credential(ctx, config.auth, headers)
        content, content_type = await _body(ctx, config, inputs)
        if content_type and not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", content_type))
        limits = net.Limits(
            timeout_s=config.timeout_s or settings.http_timeout_s,
            max_request_bytes=settings.http_max_request_bytes,
            max_response_bytes=settings.http_max_response_bytes,
            oversize="fail",
            user_agent="Switchyard-http",
        )
        ctx.detail["request"] = f"{config.method} {url}"
        try:
            response = await net.request(
                config.method,
                url,
                headers=headers,
                params=query,
                content=content,
                allow=settings.http_allow,
                limits=limits,
                private=private,
            )
        except (net.NetTimeout, net.Unreachable) as exc:
            raise NodeError(credentials.redact(str(exc), forms), retryable=True) from None
        except net.NetError as exc:  # refused, too large, malformed: the same again would be
            raise NodeError(credentials.redact(str(exc), forms)) from None
        # A server may echo the credential it got (in a body, a header, an error text):
        # what the node emits or fails with is kept, logged and shown, so it is cut out.
        out_headers = {
            name: credentials.redact(value, forms)
            for name, value in net.header_dict(response).items()
        }
        text = credentials.redact(response.text(), forms)
        if config.fail_on_status and response.status >= 400:
            raise _status_error(response, out_headers, forms)
        return {
            "status": response.status,
            "headers": out_headers,
            "body": _decoded(text, out_headers),
        }


def _with_credential(
    ctx: NodeContext, name: str, headers: list[tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """`headers` with the credential's, the names of those (never sent on to another
    origin by a redirect) and the forms of its value to cut out of the answer. The
    credential's win over a header of the same name typed in the node, which may only be a
    placeholder. Errors name the credential, never its value."""
    secret = ctx.services.credentials.look_up(name)
    if secret is None:
        raise NodeError(f"auth: no credential named {name!r} is available to this run")
    try:
        added = credentials.auth_headers(secret.kind, secret.value, header=secret.header)
    except credentials.CredentialError as exc:
        raise NodeError(f"auth: credential {name!r}: {exc}") from None
    taken = {key.lower() for key, _ in added}
    kept = [(k, v) for k, v in headers if k.lower() not in taken]
    return kept + added, sorted(taken), credentials.secret_forms(secret, added)


async def _body(
    ctx: NodeContext, config: HttpConfig, inputs: dict
) -> tuple[bytes | None, str | None]:
    if config.body_type == "form":
        fields = [
            (pair.name, await ctx.render(f"form.{pair.name}", pair.value, inputs))
            for pair in config.form
        ]
        return urllib.parse.urlencode(fields).encode(), "application/x-www-form-urlencoded"
    if config.body_type == "none" or not config.body:
        return None, None
    text = await ctx.render("body", config.body, inputs)
    if config.body_type == "text":
        return text.encode(), "text/plain; charset=utf-8"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NodeError(f"body: the rendered template is not JSON: {exc}") from None
    return json.dumps(value, ensure_ascii=False).encode(), "application/json"


def _decoded(text: str, headers: dict[str, str]) -> Any:
    if net.is_json(headers) and text.strip():
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise NodeError(f"the response says it is JSON but is not: {exc}") from None
    return text


def _status_error(response: net.Response, headers: dict[str, str], forms: list[str]) -> NodeError:
    status = response.status
    retryable = status in _RETRYABLE_STATUSES or status >= 500
    retry_after = retry_after_s(headers) if retryable else None
    # Cut before the excerpt is trimmed, or a secret across the cut would leave its head.
    excerpt = " ".join(credentials.redact(response.text(), forms).split())[:300]
    where = credentials.redact(str(response.url), forms)
    message = f"HTTP {status} {response.reason} from {where}".rstrip()
    if excerpt:
        message += f": {excerpt}"
    if retry_after is not None:
        message += f" (retry after {retry_after:g}s)"
    return NodeError(message, retryable=retryable, retry_after=retry_after)


def retry_after_s(headers: dict[str, str]) -> float | None:
    """Seconds to wait, from ``Retry-After`` (seconds or an HTTP date), as for model calls.

    >>> retry_after_s({"retry-after": "2"}), retry_after_s({}), retry_after_s({"retry-after": "x"})
    (2.0, None, None)
    """
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(float(email.utils.mktime_tz(parsed) - time.time()), 0.0)
