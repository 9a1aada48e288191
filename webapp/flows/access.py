"""Who may see and change which flow and run. Every view, API call and socket asks here.

For now a flow is its owner's alone; teams and shares extend these functions, and
nothing else needs to change. A stranger gets Http404, never a hint the object exists.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from webapp.flows.models import Flow


def visible_flows(user) -> QuerySet[Flow]:
    if not user.is_authenticated:
        return Flow.objects.none()
    return Flow.objects.filter(owner=user)


def editable_flows(user) -> QuerySet[Flow]:
    return visible_flows(user)


def flow_for_viewer(user, flow_id: int) -> Flow:
    flow = visible_flows(user).filter(pk=flow_id).first()
    if flow is None:
        raise Http404("No such flow.")
    return flow


def flow_for_editor(user, flow_id: int) -> Flow:
    flow = editable_flows(user).filter(pk=flow_id).first()
    if flow is None:
        raise Http404("No such flow.")
    return flow


def can_view_flow(user, flow_id: int) -> bool:
    return visible_flows(user).filter(pk=flow_id).exists()


def can_edit_flow(user, flow_id: int) -> bool:
    return editable_flows(user).filter(pk=flow_id).exists()
