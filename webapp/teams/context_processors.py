"""What every page's header needs from teams: how many invitations wait for the user."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from webapp.teams.services import invitations_for


def waiting(request: HttpRequest) -> dict[str, Any]:
    """``waiting_invitations``: a callable, so the count is asked only by a page that
    shows it (templates call callables) and never for anonymous visitors."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"waiting_invitations": 0}
    return {"waiting_invitations": lambda: invitations_for(user).count()}
