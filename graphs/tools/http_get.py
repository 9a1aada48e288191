"""The http_get tool: fetch one URL for the model, guarded against SSRF.

The model chooses the URL, so it must not be able to reach anything a public client could
not. The guard is ``graphs.net``, shared with the ``http`` node: it says how it holds. A
host in the deployment's allow-list (``ToolSettings.http_allow``) is reachable here too.
"""

from __future__ import annotations

from typing import Any

from graphs import net
from graphs.tools.base import ToolError, ToolSettings

DISABLED_MESSAGE = "http_get is disabled; set SWITCHYARD_HTTP_GET_ENABLED=1 to allow it"


async def fetch(url: str, settings: ToolSettings) -> str:
    """GET `url` under the SSRF policy and return status, content type and (capped) body text."""
    limits = net.Limits(
        timeout_s=settings.http_get_timeout_s,
        max_response_bytes=settings.http_get_max_bytes,
        oversize="truncate",
        user_agent="Switchyard-http_get",
    )
    try:
        response = await net.request("GET", url, allow=settings.http_allow, limits=limits)
    except net.NetError as exc:
        raise ToolError(str(exc)) from None
    return render(response, max_bytes=settings.http_get_max_bytes)


def render(response: net.Response, *, max_bytes: int) -> str:
    """The response as the model reads it: status line, where it ended up, type, body."""
    lines = [f"HTTP {response.status} {response.reason}".rstrip()]
    if response.redirected:
        lines.append(f"url: {response.url}")
    lines.append(f"content-type: {response.header('content-type') or '(none)'}")
    lines.append("")
    lines.append(response.text())
    if response.truncated:
        lines.append(f"\n[truncated: the body is longer than {max_bytes} bytes]")
    return "\n".join(lines)


class HttpGet:
    """Built-in tool: GET a public http(s) URL. Off unless settings.http_get_enabled."""

    name: str = "http_get"
    # The page may change between two fetches of the same URL.
    deterministic: bool = False
    description: str = (
        "Fetch a public web page or API endpoint with an HTTP GET request and return the "
        "status line, content type and the body as text (long bodies are truncated). Only "
        "http:// and https:// URLs on the public internet are allowed; private, local and "
        "cloud-metadata addresses are refused."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "url": {
                "type": "string",
                "description": "The absolute http:// or https:// URL to fetch.",
            }
        },
        "required": ["url"],
    }

    async def call(self, args: dict[str, Any], settings: ToolSettings) -> str:
        if not settings.http_get_enabled:
            raise ToolError(DISABLED_MESSAGE)
        url = args.get("url")
        if not isinstance(url, str) or not url.strip():
            raise ToolError("missing 'url' (a string)")
        return await fetch(url.strip(), settings)
