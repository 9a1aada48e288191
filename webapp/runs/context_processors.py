"""What every page's header needs from runs: how many approvals wait for the user."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from webapp.runs.inbox_views import waiting_count


def waiting(request: HttpRequest) -> dict[str, Any]:
    """``waiting_approvals``: a callable, so the count is asked only by a page that shows
    it (templates call callables) and never for anonymous visitors."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"waiting_approvals": 0}
    return {"waiting_approvals": lambda: waiting_count(user)}
