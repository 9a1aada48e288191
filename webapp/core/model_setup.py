"""Which model runs call, said up front (issue 14, item 12).

Without ``ANTHROPIC_API_KEY`` every model call goes to the offline model
(``graphs.llm.offline``), which answers with canned text: the editor and the run page say
so in a banner before anyone runs anything. The node form's Model field offers the models
the app knows prices for (``settings.MODEL_PRICES``); any other name may still be typed.
"""

from __future__ import annotations

from django.conf import settings

from graphs.llm.offline import OfflineClient
from webapp.credentials.service import has_model_key
from webapp.execution.plans import engine_services

OFFLINE = "offline"


def offline_model_in_use(team_id: int | None = None, user_id: int | None = None) -> bool:
    """Whether runs of a flow of this team (else, a personal flow started by this user)
    call the offline model: the server has no API key and the flow's team (or the user)
    has no Anthropic key credential of its own."""
    if not isinstance(engine_services().model_client, OfflineClient):
        return False
    return not has_model_key(team_id, user_id)


def known_models() -> list[str]:
    """The model names the price table knows, for the Model field's suggestions."""
    return sorted(name for name in settings.MODEL_PRICES if name != OFFLINE)
