"""Who may see and change which flow and run. Every view, API call and socket asks here.

A user's role on a flow is the highest of:
- owner of a flow in their personal space (``flow.team`` is empty and ``flow.owner`` is them);
- their role in the team the flow belongs to (owner, editor, viewer);
- a share of the flow with them that they accepted, or with a team they are in (editor
  or viewer). A share waiting for its recipient to accept it gives nothing.

Viewer: open the flow, its versions and runs, replay, export. Editor: also edit, save,
run, re-run, cancel. Owner: also share, delete, transfer, manage the team. Below viewer
there is nothing: a stranger gets Http404, never a hint the object exists.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404

from webapp.flows.models import Flow, FlowShare
from webapp.teams.models import Membership, Role

VIEWER, EDITOR, OWNER = Role.VIEWER, Role.EDITOR, Role.OWNER


def flows_with_role(user, role: str) -> QuerySet[Flow]:
    """The flows on which `user` has `role` or a higher one."""
    if not user.is_authenticated:
        return Flow.objects.none()
    roles = Role.at_least(role)
    teams = Membership.objects.filter(user=user, role__in=roles).values("team")
    condition = Q(owner=user, team__isnull=True) | Q(team__in=teams)
    share_roles = [r for r in roles if r != OWNER]
    if share_roles:
        shared = FlowShare.objects.filter(_shares_reaching(user), role__in=share_roles)
        condition |= Q(pk__in=shared.values("flow"))
    return Flow.objects.filter(condition)


def _shares_reaching(user) -> Q:
    """The shares that give `user` a role: theirs once accepted, and their teams'."""
    member_of = Membership.objects.filter(user=user).values("team")
    return Q(user=user, accepted_at__isnull=False) | Q(team__in=member_of)


def visible_flows(user) -> QuerySet[Flow]:
    return flows_with_role(user, VIEWER)


def editable_flows(user) -> QuerySet[Flow]:
    return flows_with_role(user, EDITOR)


def owned_flows(user) -> QuerySet[Flow]:
    return flows_with_role(user, OWNER)


def role_on_flow(user, flow: Flow) -> str | None:
    """The user's highest role on the flow, or None."""
    if not user.is_authenticated:
        return None
    best: str | None = OWNER if flow.team_id is None and flow.owner_id == user.pk else None
    if flow.team_id is not None:
        team_role = (
            Membership.objects.filter(team_id=flow.team_id, user=user)
            .values_list("role", flat=True)
            .first()
        )
        best = _higher(best, team_role)
    if Role.rank(best) < Role.rank(EDITOR):
        for share_role in FlowShare.objects.filter(_shares_reaching(user), flow=flow).values_list(
            "role", flat=True
        ):
            best = _higher(best, share_role)
    return best


def _higher(a: str | None, b: str | None) -> str | None:
    return a if Role.rank(a) >= Role.rank(b) else b


def _flow_with_role(user, flow_id: int, role: str) -> Flow:
    """The flow if the user has `role` on it; 404 if they cannot see it, 403 if they can
    see it but their role is lower (they know it exists; they should know why not)."""
    flow = _own_personal_flow(user, flow_id)
    if flow is not None:
        return flow
    flow = flows_with_role(user, role).filter(pk=flow_id).first()
    if flow is not None:
        return flow
    if role != VIEWER and can_view_flow(user, flow_id):
        raise PermissionDenied(f"You need the {role} role on this flow.")
    raise Http404("No such flow.")


def _own_personal_flow(user, flow_id: int) -> Flow | None:
    """The flow if it is in `user`'s personal space: theirs, with every role. Asked first
    because it is the common case and a plain read; the query over teams and shares
    (``flows_with_role``) costs the server several times more to build (bench/load.py:
    every POST of a run and every run socket asked it)."""
    if not user.is_authenticated:
        return None
    return Flow.objects.filter(pk=flow_id, owner=user, team__isnull=True).first()


def flow_for_viewer(user, flow_id: int) -> Flow:
    return _flow_with_role(user, flow_id, VIEWER)


def flow_for_editor(user, flow_id: int) -> Flow:
    return _flow_with_role(user, flow_id, EDITOR)


def flow_for_owner(user, flow_id: int) -> Flow:
    return _flow_with_role(user, flow_id, OWNER)


def can_view_flow(user, flow_id: int) -> bool:
    return visible_flows(user).filter(pk=flow_id).exists()


def can_edit_flow(user, flow_id: int) -> bool:
    return editable_flows(user).filter(pk=flow_id).exists()


def can_own_flow(user, flow_id: int) -> bool:
    return owned_flows(user).filter(pk=flow_id).exists()
