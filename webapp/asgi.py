"""The ASGI application: Django for HTTP, the MCP server at ``/mcp``, Channels for the run and
flow websockets."""

import asyncio
import logging
import os
import sys
import threading

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from django.core.asgi import get_asgi_application

from graphs.settings import model_client_from_env
from webapp import daphne_patches

# The run's event log is written from a thread of its own while the event loop streams tokens. With
# the default 5 ms GIL switch interval each of the writer's hand-offs inside SQLite waits
# up to 5 ms behind a busy loop; 0.5 ms keeps live events flowing (bench/event_path.py).
sys.setswitchinterval(0.0005)
# Close codes 1008/1009 and body caps enforced while the body arrives (the module says why).
daphne_patches.install()

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
http = get_asgi_application()

# Imported after Django is set up: these touch models.
from channels.routing import ProtocolTypeRouter  # noqa: E402

from webapp.accounts.ws import BearerAuthMiddleware, SocketAuthStack  # noqa: E402
from webapp.bodylimit import BodyLimit  # noqa: E402
from webapp.execution.inprocess import serve_on  # noqa: E402
from webapp.flows.routing import websocket_urlpatterns as flow_sockets  # noqa: E402
from webapp.mcp import endpoint as mcp  # noqa: E402
from webapp.runs import timeouts  # noqa: E402
from webapp.runs.routing import websocket_urlpatterns as run_sockets  # noqa: E402
from webapp.schedules.ticker import start_with_server  # noqa: E402
from webapp.sockets import Routes, SameOriginValidator  # noqa: E402


async def http_or_mcp(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    if mcp.handles(scope["path"]):
        return await mcp.endpoint(scope, receive, send)
    return await http(scope, receive, send)


router = ProtocolTypeRouter(
    {
        "http": BodyLimit(http_or_mcp),
        "websocket": SameOriginValidator(
            SocketAuthStack(BearerAuthMiddleware(Routes(run_sockets + flow_sockets)))
        ),
    }
)


def _warm_up_model() -> None:
    """Build the model client once (as a Celery worker does at start: sweeper.warm_up)."""
    try:
        warm = getattr(model_client_from_env(), "warm_up", None)  # the offline model: none
        if warm is not None:
            warm()
    except Exception:  # no key, say: the node that needs it reports that
        logging.getLogger(__name__).info("model client not warmed up", exc_info=True)


# Schedules and approval timeouts tick on the server's loop from the moment it starts:
# Daphne (what we ship, and what runserver runs) made that loop before importing this
# module. Not on the loops of other callers (tests' communicators), whose loops end with them.
if "daphne.server" in sys.modules:
    start_with_server(sys.modules["daphne.server"].twisted_loop)
    timeouts.start_with_server(sys.modules["daphne.server"].twisted_loop)
    # The model SDK loads now, on a thread of its own, while the server starts: imported by
    # the first model call it held the loop (every socket, every run) for as long as the
    # import took, seconds on a busy machine, long enough for Daphne to refuse the
    # handshakes waiting meanwhile (403). Not before the server listens, which it would
    # delay as long. The command line keeps importing it lazily (graphs.llm).
    threading.Thread(target=_warm_up_model, name="model-sdk-warm-up", daemon=True).start()


async def application(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    # The in-process driver starts runs on this loop from any thread (sync views among
    # them). Recorded on every call: cheap, and a test's server gets its own loop.
    serve_on(asyncio.get_running_loop())
    return await router(scope, receive, send)
