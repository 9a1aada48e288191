"""Which model runs call, said up front (issue 14, item 12).

Without ``ANTHROPIC_API_KEY`` every model call goes to the offline model
(``graphs.llm.offline``), which answers with canned text: the editor and the run page say
so in a banner before anyone runs anything. The node form's Model field offers the models
the app knows prices for (``settings.MODEL_PRICES``); any other name may still be typed.
"""

from __future__ import annotations

from django.conf import settings

from graphs.llm.offline import OfflineClient
from webapp.execution.plans import engine_services

OFFLINE = "offline"


def offline_model_in_use() -> bool:
    """Whether runs of this server call the offline model (no API key is set)."""
    return isinstance(engine_services().model_client, OfflineClient)


def known_models() -> list[str]:
    """The model names the price table knows, for the Model field's suggestions."""
    return sorted(name for name in settings.MODEL_PRICES if name != OFFLINE)
