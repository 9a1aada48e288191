"""The ASGI application: Django for HTTP, the MCP server at ``/mcp``, Channels for the run and
flow websockets."""

import asyncio
import os
import sys

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from django.core.asgi import get_asgi_application

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
from webapp.gcfreeze import freeze_startup  # noqa: E402
from webapp.mcp import endpoint as mcp  # noqa: E402
from webapp.requestthreads import prestart, request_thread  # noqa: E402
from webapp.runs import timeouts  # noqa: E402
from webapp.runs.routing import websocket_urlpatterns as run_sockets  # noqa: E402
from webapp.schedules.ticker import start_with_server  # noqa: E402
from webapp.sockets import Routes, SameOriginValidator  # noqa: E402


async def http_or_mcp(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    if mcp.handles(scope["path"]):
        return await mcp.endpoint(scope, receive, send)
    # On a kept thread: Django would start one for the request, and one more to join it.
    async with request_thread():
        return await http(scope, receive, send)


router = ProtocolTypeRouter(
    {
        "http": BodyLimit(http_or_mcp),
        "websocket": SameOriginValidator(
            SocketAuthStack(BearerAuthMiddleware(Routes(run_sockets + flow_sockets)))
        ),
    }
)


# Schedules and approval timeouts tick on the server's loop from the moment it starts:
# Daphne (what we ship, and what runserver runs) made that loop before importing this
# module. Not on the loops of other callers (tests' communicators), whose loops end with them.
if "daphne.server" in sys.modules:
    start_with_server(sys.modules["daphne.server"].twisted_loop)
    timeouts.start_with_server(sys.modules["daphne.server"].twisted_loop)
    prestart()
    freeze_startup()
    # The Anthropic SDK is loaded on a thread now, not by the first model call on the loop:
    # that import held the loop for 1-2 s on an idle machine and over 60 s at a load of 15-20
    # (bench/load.py's requests timed out behind it).
    from webapp.execution.warm import warm_model_client

    warm_model_client()


async def application(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    # The in-process driver starts runs on this loop from any thread (sync views among
    # them). Recorded on every call: cheap, and a test's server gets its own loop.
    serve_on(asyncio.get_running_loop())
    return await router(scope, receive, send)
