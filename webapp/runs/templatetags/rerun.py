"""``{% load rerun %}``: what the run page's re-run forms need, computed in Python.

The run page and the inspector include ``runs/_actions.html`` and
``runs/_node_actions.html``; these tags give them their context, so the views that
render those pages need not know about re-runs.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.contrib.auth.models import AnonymousUser

from webapp.runs import rerun_views
from webapp.runs.models import Run

register = template.Library()


@register.simple_tag(takes_context=True)
def run_actions(context: template.Context, run: Run) -> dict[str, Any]:
    return rerun_views.actions_context(_user(context), run)


@register.simple_tag(takes_context=True)
def node_actions(context: template.Context, run: Run, node_id: str) -> dict[str, Any]:
    return rerun_views.node_actions_context(_user(context), run, node_id)


def _user(context: template.Context):
    """Who is looking; rendered without a request (a fragment), nobody: no actions."""
    request = context.get("request")
    return request.user if request is not None else AnonymousUser()
