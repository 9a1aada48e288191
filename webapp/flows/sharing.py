"""Sharing a flow: with people and teams, handing it to a new owner, and read-only links.

Every function here changes who can reach a flow, so only the flow's owner may call it:
callers get the flow through ``access.flow_for_owner`` first. Problems a person can fix
(an unknown username, a team they are not in) raise ShareError with the reason in words.

Share links: only the token's hash is stored. A link to a flow shows its current version
and its runs; a link to a run shows that run alone. A revoked or expired link is a 404,
exactly like a token that never existed.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from webapp.flows.models import Flow, FlowShare, ShareLink
from webapp.runs.models import Run
from webapp.teams.models import Membership, Role, Team, hash_secret
from webapp.teams.services import TeamError, find_user

SHARE_ROLES = (FlowShare.Role.VIEWER, FlowShare.Role.EDITOR)
# Share link lifetimes offered, in days; None is "until revoked".
LINK_DAYS = (1, 7, 30)
HINT_CHARS = 6


class ShareError(ValueError):
    """A share, transfer or link that cannot be made; the message says why."""


# ---- Shares with people and teams ------------------------------------------------------


def shares(flow: Flow) -> QuerySet[FlowShare]:
    """People first, by name, then teams, by name."""
    return flow.shares.select_related("user", "team").order_by(
        F("team__name").asc(nulls_first=True), "user__username"
    )


def share_teams(user) -> QuerySet[Team]:
    """The teams `user` may share a flow with: the ones they are in."""
    return Team.objects.filter(memberships__user=user)


def _check_role(role: str) -> None:
    if role not in SHARE_ROLES:
        raise ShareError(f"“{role}” cannot be shared: choose viewer or editor.")


def share_with_user(flow: Flow, by, who: str, role: str) -> FlowShare:
    """Share with a person (username or e-mail); sharing again changes the role."""
    _check_role(role)
    try:
        user = find_user(who)
    except TeamError as exc:
        raise ShareError(str(exc)) from None
    if flow.team_id is None and flow.owner_id == user.pk:
        raise ShareError(f"{user.username} owns this flow already.")
    share, _ = FlowShare.objects.update_or_create(
        flow=flow, user=user, defaults={"role": role, "created_by": by}
    )
    return share


def share_with_team(flow: Flow, by, team_id: int | None, role: str) -> FlowShare:
    """Share with every member of a team the sharing user is in."""
    _check_role(role)
    team = share_teams(by).filter(pk=team_id).first() if team_id else None
    if team is None:
        raise ShareError("Choose one of your teams.")
    if flow.team_id == team.pk:
        raise ShareError(f"This flow belongs to {team.name} already.")
    share, _ = FlowShare.objects.update_or_create(
        flow=flow, team=team, defaults={"role": role, "created_by": by}
    )
    return share


def share_of(flow: Flow, share_id: int) -> FlowShare:
    share = flow.shares.filter(pk=share_id).select_related("user", "team").first()
    if share is None:
        raise Http404("No such share.")
    return share


def change_share(share: FlowShare, role: str) -> FlowShare:
    _check_role(role)
    share.role = role
    share.save(update_fields=["role"])
    return share


def remove_share(share: FlowShare) -> None:
    share.delete()


# ---- Transfer --------------------------------------------------------------------------


def transfer_targets(flow: Flow, user) -> list[Team]:
    """The teams `user` may move the flow into: those where they are an editor or owner."""
    teams = Team.objects.filter(
        memberships__user=user, memberships__role__in=Role.at_least(Role.EDITOR)
    )
    return list(teams.exclude(pk=flow.team_id) if flow.team_id else teams)


def transfer_to_user(flow: Flow, by, who: str) -> Flow:
    """Move the flow into a person's personal space; they become its owner.

    A team's flow may only go to one of that team's members.
    """
    try:
        user = find_user(who)
    except TeamError as exc:
        raise ShareError(str(exc)) from None
    if flow.team_id is None and flow.owner_id == user.pk:
        raise ShareError(f"{user.username} owns this flow already.")
    if (
        flow.team_id is not None
        and not Membership.objects.filter(team_id=flow.team_id, user=user).exists()
    ):
        raise ShareError(
            f"{user.username} is not a member of {flow.team.name}: a team's flow can only "
            "move to one of its members."
        )
    with transaction.atomic():
        # A share with the new owner would only repeat what owning it gives.
        flow.shares.filter(user=user).delete()
        flow.owner = user
        flow.team = None
        flow.save(update_fields=["owner", "team", "updated"])
    return flow


def transfer_to_team(flow: Flow, by, team_id: int | None) -> Flow:
    """Move the flow into a team where `by` is an editor or owner; its roles then apply."""
    team = next((t for t in transfer_targets(flow, by) if t.pk == team_id), None)
    if team is None:
        raise ShareError("Choose a team where you are an editor or owner.")
    with transaction.atomic():
        flow.shares.filter(team=team).delete()
        flow.team = team
        flow.save(update_fields=["team", "updated"])
    return flow


# ---- Share links -----------------------------------------------------------------------


def create_link(
    flow: Flow, by, *, run: Run | None = None, days: int | None = None, hide_io: bool = False
) -> tuple[ShareLink, str]:
    """A new read-only link to the flow or to one of its runs; returns it and its raw token.

    The raw token exists only in this return value: it is shown once and never stored.
    """
    if run is not None and run.flow_id != flow.pk:
        raise ShareError("That run is not one of this flow's.")
    if days is not None and days not in LINK_DAYS:
        raise ShareError(f"A link lasts {', '.join(map(str, LINK_DAYS))} days, or until revoked.")
    expires = timezone.now() + dt.timedelta(days=days) if days else None
    for _ in range(3):
        raw = secrets.token_urlsafe(32)
        try:
            link = ShareLink.objects.create(
                flow=flow,
                run=run,
                digest=hash_secret(raw),
                hint=raw[:HINT_CHARS],
                hide_io=hide_io,
                created_by=by,
                expires=expires,
            )
        except IntegrityError:  # pragma: no cover - 256 random bits colliding
            continue
        return link, raw
    raise ShareError("Could not make a link; try again.")  # pragma: no cover


def links(flow: Flow) -> QuerySet[ShareLink]:
    """The flow's links that have not been revoked (expired ones included, marked so)."""
    return flow.share_links.filter(revoked_at__isnull=True).select_related("run", "created_by")


def link_of(flow: Flow, link_id: int) -> ShareLink:
    link = links(flow).filter(pk=link_id).first()
    if link is None:
        raise Http404("No such link.")
    return link


def revoke_link(link: ShareLink) -> None:
    link.revoked_at = timezone.now()
    link.save(update_fields=["revoked_at"])


def is_live(link: ShareLink) -> bool:
    return link.revoked_at is None and (link.expires is None or link.expires > timezone.now())


def link_for_token(raw: str) -> ShareLink:
    """The live link with this token; Http404 for a revoked, expired or unknown one."""
    if not raw or len(raw) > 200:
        raise Http404("No such link.")
    link = (
        ShareLink.objects.select_related("flow", "run")
        .filter(digest=hash_secret(raw), revoked_at__isnull=True)
        .filter(Q(expires__isnull=True) | Q(expires__gt=timezone.now()))
        .first()
    )
    if link is None:
        raise Http404("No such link.")
    return link


def runs_for_link(link: ShareLink) -> QuerySet[Run]:
    """The runs the link shows: its one run, or every run of its flow."""
    if link.run_id is not None:
        return Run.objects.filter(pk=link.run_id)
    return Run.objects.filter(flow_id=link.flow_id)


def run_for_link(link: ShareLink, run_id: int) -> Run:
    run = runs_for_link(link).select_related("flow", "flow_version").filter(pk=run_id).first()
    if run is None:
        raise Http404("No such run.")
    return run


# What hide_io takes out of each event type; statuses, timings and usage stay.
HIDDEN_FIELDS: dict[str, tuple[str, ...]] = {
    "run_started": ("inputs",),
    "node_started": ("inputs",),
    "node_delta": ("text",),
    "node_finished": ("output", "detail"),
    "run_finished": ("outputs",),
}


def without_io(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its inputs, outputs, streamed text and details left out.

    >>> without_io({"type": "node_finished", "node": "a", "output": {"text": "x"},
    ...             "detail": {"prompt": "p"}, "duration_s": 1.5})
    {'type': 'node_finished', 'node': 'a', 'duration_s': 1.5}
    >>> without_io({"type": "run_finished", "status": "succeeded", "outputs": {"a": 1}})
    {'type': 'run_finished', 'status': 'succeeded'}
    >>> without_io({"type": "node_failed", "node": "a", "error": "bad input 'my secret'"})["error"]
    'failed (this link hides error details, which can quote inputs and outputs)'
    """
    hidden = HIDDEN_FIELDS.get(event.get("type", ""), ())
    kept = {k: v for k, v in event.items() if k not in hidden}
    if "error" in kept:
        kept["error"] = HIDDEN_ERROR
    return kept


# An error message quotes what failed: a template's values, a model's reply, a run input.
HIDDEN_ERROR = "failed (this link hides error details, which can quote inputs and outputs)"


def public_error(link: ShareLink, error: str) -> str:
    """A run's error as the link's visitors see it.

    >>> public_error(ShareLink(hide_io=True), "template error: 'secret input' is not a list")
    'failed (this link hides error details, which can quote inputs and outputs)'
    """
    return HIDDEN_ERROR if link.hide_io and error else error


def public_event(link: ShareLink, event: dict[str, Any]) -> dict[str, Any]:
    """An event as the link's visitors get it.

    >>> public_event(ShareLink(hide_io=False), {"type": "node_finished", "output": {"a": 1},
    ...              "cached": {"source": "run 7", "usage": {}}})
    {'type': 'node_finished', 'output': {'a': 1}, 'cached': {'usage': {}}}
    """
    kept = without_io(event) if link.hide_io else dict(event)
    for key in ("cached", "reused"):
        # Their source names another run ("run 42"), which the link may not show.
        if isinstance(kept.get(key), dict):
            kept[key] = {k: v for k, v in kept[key].items() if k != "source"}
    return kept
