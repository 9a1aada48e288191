"""Request bodies over their cap get 413 while they stream in, not after.

Caps: ``API_MAX_BODY_BYTES`` under ``/api/`` (a multipart run upload:
``webapp.runs.uploads.upload_limit()``, for its files) and ``WEBHOOK_MAX_BODY_BYTES`` under
``/hooks/`` (the answer is problem details), ``API_MAX_BODY_BYTES`` for the MCP server at
``/mcp`` (plain text, as any other), else
``MAX_BODY_BYTES`` (plain text; forms keep their own, finer limits below it, such as
``DATA_UPLOAD_MAX_MEMORY_SIZE`` and the import page's own 413).

Two places enforce them, because neither alone can:

- ``BodyLimit``, an ASGI middleware around Django (webapp/asgi.py), counts the bytes the
  server hands over and answers 413 itself once past the cap, declared (Content-Length)
  or not (chunked), without asking for the rest. Django's ASGI handler reads the whole
  body into a file before any middleware runs, and then a chunked body over the cap met
  ``DATA_UPLOAD_MAX_MEMORY_SIZE`` inside the view: a 500.
- Daphne itself (webapp/daphne_patches.py): Twisted reads a request's whole body before
  Daphne starts the application at all, so the answer there is given from the request
  line and headers (Content-Length) or from the running count of a chunked body.

Both build their answer with ``refusal``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from webapp import problems
from webapp.runs import uploads

API_PREFIX = "/api/"
HOOK_PREFIX = "/hooks/"
# Answered with problem details (JSON), as programs call them.
JSON_PREFIXES = (API_PREFIX, HOOK_PREFIX)
MCP_PATHS = ("/mcp", "/mcp/")
# The import page takes a document as large as the API does, plus the form around it.
PAGE_SLACK_BYTES = 1_000_000

Scope = dict[str, Any]


def limit_for(path: str, content_type: str | None = None) -> int:
    """The largest body, in bytes, a request to ``path`` of ``content_type`` may send."""
    if uploads.takes_files(path, content_type):
        return uploads.upload_limit()
    if path.startswith(API_PREFIX) or path in MCP_PATHS:
        return settings.API_MAX_BODY_BYTES
    if path.startswith(HOOK_PREFIX):
        return settings.WEBHOOK_MAX_BODY_BYTES
    return max(settings.MAX_BODY_BYTES, settings.API_MAX_BODY_BYTES + PAGE_SLACK_BYTES)


def refusal(
    path: str, length: int | None, content_type: str | None = None
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of the 413 for ``path``; ``length`` is the declared size, if any."""
    limit = limit_for(path, content_type)
    size = f"{length:,} bytes" if length is not None else f"over {limit:,} bytes"
    detail = f"request body is {size}; the limit is {limit:,}"
    if path.startswith(JSON_PREFIXES):
        answer = problems.response(413, "body_too_large", detail)
        content_type, body = answer["Content-Type"], answer.content
    else:
        content_type, body = "text/plain; charset=utf-8", f"Request too large: {detail}.\n".encode()
    headers = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(body))]
    return headers, body


def content_type_of(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.decode("latin-1")
    return None


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The Content-Length header as a number; None when absent or not a number."""
    for name, value in headers:
        if name.lower() == b"content-length":
            return int(value) if value.strip().isdigit() else None
    return None


class BodyLimit:
    """ASGI middleware: 413 for an HTTP body over ``limit_for`` its path, as it arrives."""

    def __init__(self, application: Any):
        self.application = application

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.application(scope, receive, send)
        path = scope.get("path", "")
        content_type = content_type_of(scope.get("headers", []))
        limit = limit_for(path, content_type)
        length = declared_length(scope.get("headers", []))
        if length is not None and length > limit:
            return await self.refuse(send, path, length, content_type)

        received = 0
        refused = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    await self.refuse(send, path, None, content_type)
                    # Django's handler takes this for a client gone mid-body and stops
                    # quietly, without a response of its own.
                    return {"type": "http.disconnect"}
            return message

        return await self.application(scope, counting_receive, send)

    @staticmethod
    async def refuse(
        send: Any, path: str, length: int | None, content_type: str | None = None
    ) -> None:
        headers, body = refusal(path, length, content_type)
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
