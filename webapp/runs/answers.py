"""What an API answer says of a run it started: at once, or after waiting for it to end.

Shared by every way of starting a run from outside (the run API, webhooks).
"""

from __future__ import annotations

from typing import Any

from webapp.runs.history_views import run_seconds
from webapp.runs.models import Run
from webapp.runs.services import start_notice


def started(run: Run) -> dict[str, Any]:
    return {
        "id": run.pk,
        "status": run.status,
        "version": run.flow_version.number,
        "notice": start_notice(run),
    }


def ended(run_id: int) -> dict[str, Any]:
    run = Run.objects.select_related("flow_version").get(pk=run_id)
    return {
        **started(run),
        "outputs": run.outputs,
        "error": run.error,
        "usage": run.usage,
        "cost_usd": float(run.cost_usd),
        "duration_s": run_seconds(run),
    }
