"""Sharing a flow: with people and teams, handing it to a new owner, and read-only links.

Every function here changes who can reach a flow, so only the flow's owner may call it:
callers get the flow through ``access.flow_for_owner`` first (the ones a share's
recipient calls, to accept or decline it, find it by its recipient). Problems a person
can fix (a team they are not in) raise ShareError with the reason in words.

Nothing here tells the owner which usernames or e-mail addresses have accounts. A share
with a person waits for them to accept it and shows the owner what they typed: one that
found no account looks exactly like one not answered yet. A transfer goes only to someone
who can already open the flow, and is refused in the same words for everyone else.

Share links: only the token's hash is stored. A link to a flow shows its current version
and its runs; a link to a run shows that run alone. A revoked or expired link is a 404,
exactly like a token that never existed.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, QuerySet, When
from django.http import Http404
from django.utils import timezone

from webapp.flows import access
from webapp.flows.models import Flow, FlowShare, ShareLink
from webapp.runs.models import Run
from webapp.teams.models import Membership, Role, Team, hash_secret
from webapp.teams.services import TeamError, account_for, typed_name

SHARE_ROLES = (FlowShare.Role.VIEWER, FlowShare.Role.EDITOR)
# Share link lifetimes offered, in days; None is "until revoked".
LINK_DAYS = (1, 7, 30)
HINT_CHARS = 6


class ShareError(ValueError):
    """A share, transfer or link that cannot be made; the message says why."""


# ---- Shares with people and teams ------------------------------------------------------


def shares(flow: Flow) -> QuerySet[FlowShare]:
    """People first, then teams, by name; among people, the accepted ones first.

    A pending share sorts by what the owner typed, never by the account it found, so
    its place in the list says nothing either.
    """
    return (
        flow.shares.select_related("user", "team")
        .annotate(
            waiting=Case(When(team__isnull=True, accepted_at__isnull=True, then=1), default=0),
            shown=Case(
                When(team__isnull=False, then=F("team__name")),
                When(accepted_at__isnull=True, then=F("invitee")),
                default=F("user__username"),
            ),
        )
        .order_by(F("team__name").asc(nulls_first=True), "waiting", "shown", "pk")
    )


def share_teams(user) -> QuerySet[Team]:
    """The teams `user` may share a flow with: the ones they are in."""
    return Team.objects.filter(memberships__user=user)


def _check_role(role: str) -> None:
    if role not in SHARE_ROLES:
        raise ShareError(f"“{role}” cannot be shared: choose viewer or editor.")


def _typed(who: str | None) -> str:
    try:
        return typed_name(who)
    except TeamError as exc:
        raise ShareError(str(exc)) from None


def share_with_user(flow: Flow, by, who: str, role: str) -> FlowShare:
    """Share with a person (username or e-mail); it reaches them once they accept it.

    Sharing again with the same name or e-mail, or with the username of someone who has
    accepted, changes the role. Otherwise a pending share is made whether or not `who`
    finds an account (one that finds none reaches nobody), so the answer is the same.
    """
    _check_role(role)
    who = _typed(who)
    same = flow.shares.filter(team__isnull=True).filter(
        Q(invitee=who) | Q(accepted_at__isnull=False, user__username=who)
    )
    share = same.first()
    if share is not None:
        return change_share(share, role)
    user = account_for(who)
    if user is not None and user.pk == by.pk:
        raise ShareError("That is you: you have this flow already.")
    share, _ = FlowShare.objects.update_or_create(
        flow=flow,
        invitee=who,
        team=None,
        defaults={"role": role},
        create_defaults={"user": user, "role": role, "created_by": by},
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
    # Within a team no acceptance is asked: only its members may share with it.
    share, _ = FlowShare.objects.update_or_create(
        flow=flow,
        team=team,
        defaults={"role": role, "created_by": by},
        create_defaults={"role": role, "created_by": by, "accepted_at": timezone.now()},
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


# ---- Shares waiting for their recipient -------------------------------------------------


def pending_shares(user) -> QuerySet[FlowShare]:
    """Shares with `user` waiting for them to accept or decline, newest first."""
    if not user.is_authenticated:
        return FlowShare.objects.none()
    return (
        FlowShare.objects.filter(user=user, team__isnull=True, accepted_at__isnull=True)
        .select_related("flow", "created_by")
        .order_by("-created", "-pk")
    )


def pending_share_for(user, share_id: int) -> FlowShare:
    """A share waiting for `user`; Http404 for anyone else's, or one already answered."""
    share = pending_shares(user).filter(pk=share_id).first()
    if share is None:
        raise Http404("No such share.")
    return share


def accept_share(user, share_id: int) -> FlowShare:
    """Accept a share: from now on it gives its role on the flow. Returns the share that
    does (one accepted before, if the flow was shared with them twice)."""
    with transaction.atomic():
        share = (
            FlowShare.objects.select_for_update()
            .filter(pk=share_id, user=user, team__isnull=True, accepted_at__isnull=True)
            .first()
        )
        if share is None:
            raise Http404("No such share.")
        earlier = (
            FlowShare.objects.select_for_update()
            .filter(flow_id=share.flow_id, user=user, accepted_at__isnull=False)
            .first()
        )
        # Other offers of the same flow to them (by username and by e-mail) are answered
        # by this one.
        pending_shares(user).filter(flow_id=share.flow_id).exclude(pk=share.pk).delete()
        if earlier is not None:
            earlier.role = share.role
            earlier.save(update_fields=["role"])
            share.delete()
            return earlier
        share.accepted_at = timezone.now()
        share.save(update_fields=["accepted_at"])
    return share


def decline_share(user, share_id: int) -> FlowShare:
    """Decline a share: it is gone, for its recipient and from its owner's list."""
    share = pending_share_for(user, share_id)
    share.delete()
    return share


# ---- Transfer --------------------------------------------------------------------------


def transfer_targets(flow: Flow, user) -> list[Team]:
    """The teams `user` may move the flow into: those where they are an editor or owner."""
    teams = Team.objects.filter(
        memberships__user=user, memberships__role__in=Role.at_least(Role.EDITOR)
    )
    return list(teams.exclude(pk=flow.team_id) if flow.team_id else teams)


def transfer_to_user(flow: Flow, by, who: str) -> Flow:
    """Move the flow into a person's personal space; they become its owner.

    Only to someone who can already open it: a team's flow to one of the team's members,
    a personal flow to someone who accepted a share of it or is in a team it is shared
    with. So a flow never lands in a stranger's space unasked, and the refusal, the same
    for everyone else, says nothing about which names have accounts.
    """
    who = _typed(who)
    user = account_for(who)
    if user is not None and flow.team_id is None and flow.owner_id == user.pk:
        raise ShareError(f"{user.username} owns this flow already.")
    if user is None or not _may_take(flow, user):
        if flow.team_id is not None:
            raise ShareError(
                f"“{who}” cannot take this flow: a team's flow goes only to one of "
                f"{flow.team.name}'s members."
            )
        raise ShareError(
            f"“{who}” cannot take this flow: it goes only to someone who can open it "
            "already (who accepted a share of it, or is in a team it is shared with)."
        )
    with transaction.atomic():
        # A share with the new owner would only repeat what owning it gives.
        flow.shares.filter(user=user).delete()
        flow.owner = user
        flow.team = None
        flow.save(update_fields=["owner", "team", "updated"])
    return flow


def _may_take(flow: Flow, user) -> bool:
    if flow.team_id is not None:
        return Membership.objects.filter(team_id=flow.team_id, user=user).exists()
    return access.can_view_flow(user, flow.pk)


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
    # The model's thinking reads its inputs as closely as its answer does.
    "node_thinking": ("text",),
    # A map's item's streamed text (its error goes as every error does).
    "node_item": ("text",),
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
    >>> without_io({"type": "node_item", "item": 0, "event": "node_delta", "text": "secret"})
    {'type': 'node_item', 'item': 0, 'event': 'node_delta'}
    >>> without_io({"type": "node_failed", "node": "a", "error": "bad input 'my secret'"})["error"]
    'failed (this link hides error details, which can quote inputs and outputs)'

    A map in a map's item event, nested in its outer item's, is cut the same way:

    >>> without_io({"type": "node_item", "item": 0, "event": "node_item", "inner": "m",
    ...     "nested": {"item": 1, "event": "node_delta", "text": "secret"}})["nested"]
    {'item': 1, 'event': 'node_delta'}
    """
    kind = event.get("type", "")
    hidden = HIDDEN_FIELDS.get(kind, ())
    kept = {k: v for k, v in event.items() if k not in hidden}
    if "error" in kept:
        kept["error"] = HIDDEN_ERROR
    if kind == "node_item" and isinstance(kept.get("nested"), dict):
        inner = without_io({**kept["nested"], "type": "node_item"})
        kept["nested"] = {k: v for k, v in inner.items() if k != "type"}
    return kept


# An error message quotes what failed: a template's values, a model's reply, a run input.
HIDDEN_ERROR = "failed (this link hides error details, which can quote inputs and outputs)"


def public_error(link: ShareLink, error: str) -> str:
    """A run's error as the link's visitors see it.

    >>> public_error(ShareLink(hide_io=True), "template error: 'secret input' is not a list")
    'failed (this link hides error details, which can quote inputs and outputs)'
    """
    return HIDDEN_ERROR if link.hide_io and error else error


# The keys of an event that can name another run (see public_event): with io shown, the
# only events a link's visitors get otherwise than as stored.
NAMING_OTHER_RUNS = ("cached", "reused")


def public_event(link: ShareLink, event: dict[str, Any]) -> dict[str, Any]:
    """An event as the link's visitors get it.

    >>> public_event(ShareLink(hide_io=False), {"type": "node_finished", "output": {"a": 1},
    ...              "cached": {"source": "run 7", "usage": {}}})
    {'type': 'node_finished', 'output': {'a': 1}, 'cached': {'usage': {}}}
    """
    kept = without_io(event) if link.hide_io else dict(event)
    for key in NAMING_OTHER_RUNS:
        # Their source names another run ("run 42"), which the link may not show.
        if isinstance(kept.get(key), dict):
            kept[key] = {k: v for k, v in kept[key].items() if k != "source"}
    return kept
