"""Two fixes to Daphne, the server we ship (Procfile, scripts/run.sh), installed by asgi.py.

Close codes. Daphne hands the code of a consumer's ``websocket.close`` to autobahn's
``sendClose``, which accepts only 1000 and 3000-4999, the codes a *browser script* may use
(django/daphne#374). A consumer closing with 1008 (policy violation) or 1009 (message too
big) raised inside the server instead: a traceback in the log, and the client saw 1011.
RFC 6455 (7.4.1) lets an endpoint send these codes; for them the close frame is built by
autobahn's lower-level ``sendCloseFrame``, where ``sendClose`` ends after its check.

Body caps. Twisted reads a request's whole body (into memory or a temporary file) before
Daphne starts the application, so no ASGI middleware can refuse a 100 MB upload before
it has arrived. Here the request answers 413 (webapp/bodylimit.py) as soon as its
Content-Length says it is over the cap, or as soon as a chunked body passes it, and drops
whatever else comes. The answer goes out with the write side then closed, while what the
client still sends is read and dropped for a moment: closing outright with its data
unread would reset the connection, and the client could lose the answer.
"""

from __future__ import annotations

import io
from urllib.parse import unquote, urlsplit

from daphne.http_protocol import WebRequest
from daphne.ws_protocol import WebSocketProtocol

from webapp import bodylimit

# Defined by RFC 6455 (7.4.1) or registered with IANA for an endpoint to send. 1004-1006
# and 1015 must never appear in a close frame; 1000 and 3000-4999 sendClose already takes.
ENDPOINT_CODES = frozenset({1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})
# How long a refused request's connection stays open for the client to read the answer.
LINGER_S = 2.0


def install() -> None:
    """Patch Daphne's protocols once (idempotent: asgi.py may be imported twice)."""
    if getattr(WebSocketProtocol, "switchyard_patched", False):
        return
    _patch_close_codes()
    _patch_body_cap()
    WebSocketProtocol.switchyard_patched = True


def _patch_close_codes() -> None:
    server_close = WebSocketProtocol.serverClose

    def serverClose(self: WebSocketProtocol, code: int | None = None) -> None:
        if code in ENDPOINT_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            server_close(self, code=code)

    WebSocketProtocol.serverClose = serverClose


def _request_path(request: WebRequest) -> str:
    # Twisted sets the request's own path only once the body is in; the channel has the
    # request line's target from the start.
    target = getattr(request.channel, "_path", b"") or b""
    return unquote(urlsplit(target.decode("latin-1")).path)


def _content_type(request: WebRequest) -> str | None:
    found = request.requestHeaders.getRawHeaders(b"content-type")
    return found[0].decode("latin-1") if found else None


def _refuse(request: WebRequest, length: int | None) -> None:
    request.body_refused = True
    request.content = io.BytesIO()  # what was kept of the body is of no use now
    headers, body = bodylimit.refusal(_request_path(request), length, _content_type(request))
    head = [b"HTTP/1.1 413 Content Too Large"]
    head += [name + b": " + value for name, value in headers]
    head += [b"connection: close", b"", b""]
    transport = request.channel.transport
    transport.write(b"\r\n".join(head) + body)
    # Not Twisted's own "100 Continue" after the answer (it reads the header next).
    request.requestHeaders.removeHeader(b"expect")
    half_close = getattr(transport, "loseWriteConnection", None)
    if half_close is None:  # TLS: no half-close; the answer still goes out first
        transport.loseConnection()
        return
    half_close()
    # Imported here: importing the reactor installs one, and Daphne installs its own.
    from twisted.internet import reactor

    reactor.callLater(LINGER_S, transport.abortConnection)


def _patch_body_cap() -> None:
    got_length = WebRequest.gotLength
    handle_chunk = WebRequest.handleContentChunk
    request_received = WebRequest.requestReceived

    def gotLength(self: WebRequest, length: int | None) -> None:
        self.body_refused = False
        self.body_received = 0
        self.body_limit = bodylimit.limit_for(_request_path(self), _content_type(self))
        if length is not None and length > self.body_limit:
            _refuse(self, length)
            return
        got_length(self, length)

    def handleContentChunk(self: WebRequest, data: bytes) -> None:
        if self.body_refused:
            return
        self.body_received += len(data)
        if self.body_received > self.body_limit:
            _refuse(self, None)
            return
        handle_chunk(self, data)

    def requestReceived(self: WebRequest, command: bytes, path: bytes, version: bytes) -> None:
        if getattr(self, "body_refused", False):
            # All of it arrived and was dropped: nothing left to linger for.
            self.channel.transport.loseConnection()
            return
        request_received(self, command, path, version)

    WebRequest.gotLength = gotLength
    WebRequest.handleContentChunk = handleContentChunk
    WebRequest.requestReceived = requestReceived
