"""Run visibility follows the flow's: who may see the flow may see its runs."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from webapp.flows.access import editable_flows, visible_flows
from webapp.runs.models import Run


def visible_runs(user) -> QuerySet[Run]:
    return Run.objects.filter(flow__in=visible_flows(user))


def run_for_viewer(user, run_id: int) -> Run:
    run = visible_runs(user).filter(pk=run_id).first()
    if run is None:
        raise Http404("No such run.")
    return run


def run_for_editor(user, run_id: int) -> Run:
    """The run if the user may edit its flow; 403 for its viewers, 404 for everyone else."""
    run = Run.objects.filter(pk=run_id, flow__in=editable_flows(user)).first()
    if run is not None:
        return run
    if can_view_run(user, run_id):
        raise PermissionDenied("You need the editor role on this run's flow.")
    raise Http404("No such run.")


def can_view_run(user, run_id: int) -> bool:
    if not user.is_authenticated:
        return False
    # A run of a flow in the user's personal space first: the common case, a plain read
    # (see flows.access._own_personal_flow).
    mine = Run.objects.filter(pk=run_id, flow__owner=user, flow__team__isnull=True)
    return mine.exists() or visible_runs(user).filter(pk=run_id).exists()
