"""Loading the model client's SDK off the event loop when the server starts."""

from __future__ import annotations

import logging
import threading

from graphs.errors import ModelError
from webapp.gcfreeze import freeze_startup

log = logging.getLogger(__name__)


def warm_model_client() -> threading.Thread:
    """Build the engine's model client (``AnthropicClient.warm_up``: imports the SDK) on a
    daemon thread. Without a key the client's first call reports it, as before."""

    def warm() -> None:
        from webapp.execution.plans import engine_services

        client = engine_services().model_client
        warm_up = getattr(client, "warm_up", None)
        if warm_up is None:  # the offline model: nothing to load
            return
        try:
            warm_up()
        except ModelError as exc:
            log.warning("model client not ready at start: %s", exc)
            return
        # The SDK's modules live as long as the process: out of the collector's full passes.
        freeze_startup()

    thread = threading.Thread(target=warm, name="model-client-warm-up", daemon=True)
    thread.start()
    return thread
