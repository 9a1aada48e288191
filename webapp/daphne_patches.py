"""Fixes to Daphne, the server we ship (Procfile, scripts/run.sh), installed by asgi.py.

Close codes. Daphne hands the code of a consumer's ``websocket.close`` to autobahn's
``sendClose``, which accepts only 1000 and 3000-4999, the codes a *browser script* may use
(django/daphne#374). A consumer closing with 1008 (policy violation) or 1009 (message too
big) raised inside the server instead: a traceback in the log, and the client saw 1011.
RFC 6455 (7.4.1) lets an endpoint send these codes; for them the close frame is built by
autobahn's lower-level ``sendCloseFrame``, where ``sendClose`` ends after its check.
"""

from __future__ import annotations

from daphne.ws_protocol import WebSocketProtocol

# Defined by RFC 6455 (7.4.1) or registered with IANA for an endpoint to send. 1004-1006
# and 1015 must never appear in a close frame; 1000 and 3000-4999 sendClose already takes.
ENDPOINT_CODES = frozenset({1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def install() -> None:
    """Patch Daphne once (idempotent: asgi.py may be imported twice)."""
    if getattr(WebSocketProtocol, "switchyard_patched", False):
        return
    _patch_close_codes()
    WebSocketProtocol.switchyard_patched = True


def _patch_close_codes() -> None:
    server_close = WebSocketProtocol.serverClose

    def serverClose(self: WebSocketProtocol, code: int | None = None) -> None:
        if code in ENDPOINT_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            server_close(self, code=code)

    WebSocketProtocol.serverClose = serverClose
