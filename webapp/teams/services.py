"""Teams: who is in them with which role, invitations, and the rule that a team always
keeps an owner. Pages and the API both go through here; every function that changes a
team expects its caller to have checked the acting user's role (``team_for``).

A stranger asking for a team gets Http404, exactly as for a missing one; a member whose
role is too low gets PermissionDenied (they know the team exists; they should know why not).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from webapp.teams.models import Invite, Membership, Role, Team, hash_secret

# How long an invitation addressed to a person stays open.
PERSONAL_INVITE_DAYS = 14
# The choices offered for an invite link, in days.
LINK_DAYS = (1, 7, 30)
# The longest username or e-mail address one may invite or share with (an e-mail's limit).
MAX_NAME = 254


class TeamError(ValueError):
    """A change that would break a team rule; the message says which, in words."""


class LastOwner(TeamError):
    """A team must keep at least one owner."""


@dataclass(frozen=True)
class Member:
    team: Team
    role: str


# ---- Looking teams up ------------------------------------------------------------------


def member_teams(user) -> QuerySet[Team]:
    """The teams `user` is in; `roles_in` gives the role in each."""
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(memberships__user=user)


def roles_in(user) -> dict[int, str]:
    """{team id: the user's role} for every team the user is in."""
    if not user.is_authenticated:
        return {}
    return dict(Membership.objects.filter(user=user).values_list("team_id", "role"))


def team_for(user, team_id: int, role: str = Role.VIEWER) -> Member:
    """The team and the user's role in it, if that role is at least `role`.

    Http404 for anyone not in the team; PermissionDenied for a member with a lower role.
    """
    membership = (
        Membership.objects.select_related("team").filter(team_id=team_id, user=user).first()
        if user.is_authenticated
        else None
    )
    if membership is None:
        raise Http404("No such team.")
    if Role.rank(membership.role) < Role.rank(role):
        raise PermissionDenied(f"You need the {role} role in this team.")
    return Member(membership.team, membership.role)


def account_for(who: str):
    """The one active account with this username, or else with this e-mail; else None.

    Callers answer the same whether or not one was found (an unknown name, an inactive
    account, an e-mail several accounts use): what they say must not tell which names
    and addresses have accounts.
    """
    who = (who or "").strip()
    if not who:
        return None
    users = get_user_model().objects.filter(is_active=True)
    user = users.filter(username=who).first()
    if user is not None:
        return user
    if "@" in who:
        matches = list(users.filter(email__iexact=who)[:2])
        if len(matches) == 1:
            return matches[0]
    return None


def typed_name(who: str | None) -> str:
    """A username or e-mail as typed, trimmed; TeamError when there is none or it is too long."""
    who = (who or "").strip()
    if not who:
        raise TeamError("Give a username or an e-mail address.")
    if len(who) > MAX_NAME:
        raise TeamError(f"A username or e-mail address has at most {MAX_NAME} characters.")
    return who


# ---- Teams and members -----------------------------------------------------------------


def create_team(user, name: str) -> Team:
    """A new team with its creator as its owner."""
    with transaction.atomic():
        team = Team.objects.create(name=name.strip())
        Membership.objects.create(team=team, user=user, role=Role.OWNER)
    return team


def rename_team(team: Team, name: str) -> Team:
    team.name = name.strip()
    team.save(update_fields=["name"])
    return team


def members(team: Team) -> list[Membership]:
    """Owners first, then editors, then viewers; by name within a role."""
    order = {Role.OWNER: 0, Role.EDITOR: 1, Role.VIEWER: 2}
    memberships = list(team.memberships.select_related("user"))
    memberships.sort(key=lambda m: (order.get(m.role, 3), m.user.username.lower()))
    return memberships


def _membership(team: Team, user_id: int) -> Membership:
    membership = Membership.objects.select_for_update().filter(team=team, user_id=user_id).first()
    if membership is None:
        raise Http404("No such member.")
    return membership


def _check_keeps_an_owner(team: Team, membership: Membership, what: str) -> None:
    if membership.role != Role.OWNER:
        return
    # Locked so that two owners demoting each other at once cannot both succeed.
    owners = list(
        Membership.objects.select_for_update()
        .filter(team=team, role=Role.OWNER)
        .values_list("pk", flat=True)
    )
    if owners == [membership.pk]:
        raise LastOwner(
            f"{membership.user.username} is the last owner of {team.name}: {what}. "
            "Make someone else an owner first."
        )


def change_role(team: Team, user_id: int, role: str) -> Membership:
    if role not in Role.values:
        raise TeamError(f"“{role}” is not a role: choose owner, editor or viewer.")
    with transaction.atomic():
        membership = _membership(team, user_id)
        if membership.role == role:
            return membership
        if role != Role.OWNER:
            _check_keeps_an_owner(team, membership, "a team cannot be left without one")
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def remove_member(team: Team, user_id: int) -> Membership:
    """Remove a member (an owner removing someone, or anyone leaving)."""
    with transaction.atomic():
        membership = _membership(team, user_id)
        _check_keeps_an_owner(team, membership, "a team cannot be left without one")
        membership.delete()
    return membership


def leave(team: Team, user) -> Membership:
    return remove_member(team, user.pk)


def delete_team(team: Team) -> int:
    """Delete the team with its flows (they belong to it); returns how many flows went."""
    flows = team.flows.count()
    team.delete()
    return flows


# ---- Invitations -----------------------------------------------------------------------


def _expires_in(days: int) -> dt.datetime:
    return timezone.now() + dt.timedelta(days=days)


def pending(invites: QuerySet[Invite]) -> QuerySet[Invite]:
    return invites.filter(used_at__isnull=True, revoked_at__isnull=True, expires__gt=timezone.now())


def invite_user(team: Team, by, who: str, role: str = Role.EDITOR) -> Invite:
    """An invitation for a person, by username or e-mail, that waits on their team list
    until they accept or decline it.

    The owner gets the same answer whether or not the name finds an account that can take
    it: an invitation shown by what they typed. One that found none (or found a member
    by their e-mail) reaches nobody. Inviting the same name or e-mail again replaces the
    first invitation's role and expiry.
    """
    if role not in Role.values:
        raise TeamError(f"“{role}” is not a role: choose owner, editor or viewer.")
    who = typed_name(who)
    # Owners see the member list, so saying that a member's username is taken tells nothing.
    if Membership.objects.filter(team=team, user__username=who).exists():
        raise TeamError(f"{who} is already a member of {team.name}.")
    user = account_for(who)
    if user is not None and Membership.objects.filter(team=team, user=user).exists():
        user = None
    with transaction.atomic():
        invite = pending(Invite.objects.select_for_update().filter(team=team, invitee=who)).first()
        if invite is not None:
            invite.role = role
            invite.expires = _expires_in(PERSONAL_INVITE_DAYS)
            invite.created_by = by
            invite.save(update_fields=["role", "expires", "created_by"])
            return invite
        # Personal invitations are accepted by id from the invitee's own list; the token
        # is never shown to anyone, it only fills the unique digest.
        _, digest = Invite.new_token()
        return Invite.objects.create(
            team=team,
            role=role,
            user=user,
            invitee=who,
            email=who if "@" in who else "",
            digest=digest,
            created_by=by,
            expires=_expires_in(PERSONAL_INVITE_DAYS),
        )


def create_invite_link(team: Team, by, role: str, days: int) -> tuple[Invite, str]:
    """A single-use invite link; returns the invite and its raw token (shown once)."""
    if role not in Role.values:
        raise TeamError(f"“{role}” is not a role: choose owner, editor or viewer.")
    if days not in LINK_DAYS:
        raise TeamError(f"An invite link lasts {', '.join(map(str, LINK_DAYS))} days.")
    raw, digest = Invite.new_token()
    invite = Invite.objects.create(
        team=team, role=role, digest=digest, created_by=by, expires=_expires_in(days)
    )
    return invite, raw


def team_invites(team: Team) -> QuerySet[Invite]:
    """The team's invitations that can still be used."""
    return pending(team.invites.select_related("user", "created_by"))


def invitations_for(user) -> QuerySet[Invite]:
    """Invitations waiting for `user` to accept or decline."""
    if not user.is_authenticated:
        return Invite.objects.none()
    return pending(Invite.objects.filter(user=user).select_related("team", "created_by"))


def revoke_invite(team: Team, invite_id: int) -> Invite:
    invite = pending(Invite.objects.filter(team=team, pk=invite_id)).first()
    if invite is None:
        raise Http404("No such invitation.")
    invite.revoked_at = timezone.now()
    invite.save(update_fields=["revoked_at"])
    return invite


def invitation_for(user, invite_id: int) -> Invite:
    """An invitation addressed to `user` that is still open; Http404 otherwise."""
    invite = invitations_for(user).filter(pk=invite_id).first()
    if invite is None:
        raise Http404("No such invitation.")
    return invite


def _join(invite: Invite, user) -> Membership:
    with transaction.atomic():
        locked = Invite.objects.select_for_update().get(pk=invite.pk)
        if why_not_usable(locked):
            raise TeamError(why_not_usable(locked))
        membership, _ = Membership.objects.get_or_create(
            team=locked.team, user=user, defaults={"role": locked.role}
        )
        locked.used_at = timezone.now()
        locked.save(update_fields=["used_at"])
    invite.used_at = locked.used_at
    return membership


def accept(user, invite_id: int) -> Membership:
    invite = invitation_for(user, invite_id)
    membership = _join(invite, user)
    # Invited twice (by username and by e-mail): one answer settles both.
    pending(Invite.objects.filter(team=invite.team, user=user)).update(used_at=invite.used_at)
    return membership


def decline(user, invite_id: int) -> Invite:
    invite = invitation_for(user, invite_id)
    invite.revoked_at = timezone.now()
    invite.save(update_fields=["revoked_at"])
    return invite


def link_invite(raw: str) -> Invite:
    """The link invitation with this token, whatever its state; Http404 for a bad token."""
    if not raw or len(raw) > 200:
        raise Http404("No such invitation.")
    invite = (
        Invite.objects.select_related("team")
        .filter(digest=hash_secret(raw), user__isnull=True, invitee="")
        .first()
    )
    if invite is None:
        raise Http404("No such invitation.")
    return invite


def why_not_usable(invite: Invite) -> str:
    """Why the invitation can no longer be used, in words; empty if it can."""
    if invite.revoked_at is not None:
        return "This invitation was withdrawn."
    if invite.used_at is not None:
        return "This invitation has already been used."
    if invite.expires <= timezone.now():
        return "This invitation has expired."
    return ""


def join_by_link(raw: str, user) -> Membership:
    """Join the link's team with its role; TeamError if it is used, expired or withdrawn.

    A member following a link keeps their membership as it is, and the link stays unused
    for whoever it was meant for.
    """
    invite = link_invite(raw)
    reason = why_not_usable(invite)
    if reason:
        raise TeamError(reason)
    existing = Membership.objects.filter(team=invite.team, user=user).first()
    if existing is not None:
        return existing
    return _join(invite, user)
