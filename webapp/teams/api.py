"""``/api/teams``: teams, their members and roles, invitations and invite links.

Anyone outside a team gets 404 for it, exactly as for a missing one; a member whose role
is too low gets 403. Changes that would leave a team without an owner get 409.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from django.http import HttpRequest
from django.urls import reverse
from ninja import Field, Query, Router, Schema, Status
from pydantic import StringConstraints

from webapp.api_schema import BodyIn, Days, Id, PageQuery, page_model, paginate
from webapp.auth_api import api_auth
from webapp.problems import ProblemError, responses
from webapp.teams import services
from webapp.teams.models import Invite, Membership, Role, Team

router = Router(auth=api_auth, tags=["teams"])

TeamName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
RoleName = Literal["owner", "editor", "viewer"]


class TeamIn(BodyIn):
    name: TeamName


class TeamOut(Schema):
    id: int
    name: str
    role: str = Field(description="The caller's role in the team.")
    created: dt.datetime


class MemberOut(Schema):
    user_id: int
    username: str
    role: str
    joined: dt.datetime


class TeamDetailOut(TeamOut):
    members: list[MemberOut]


class RoleIn(BodyIn):
    role: RoleName


class InviteIn(BodyIn):
    user: str | None = Field(
        None, description="Invite this user (username or e-mail); without it, make a link."
    )
    role: RoleName = "editor"
    expires_in_days: Days = Field(7, description="For a link: how long it works.")


class InviteOut(Schema):
    id: int
    team: int
    team_name: str
    role: str
    user: str | None = Field(
        description="The username or e-mail the invitation was made for; null for a link."
    )
    email: str
    created: dt.datetime
    expires: dt.datetime
    created_by: str | None


class InviteCreatedOut(InviteOut):
    token: str | None = Field(
        None, description="A link's token, shown once: only its hash is stored."
    )
    url: str | None = Field(None, description="A link's address (relative), shown once.")


class JoinIn(BodyIn):
    token: str


class JoinedOut(Schema):
    team: int
    team_name: str
    role: str


def team_out(team: Team, role: str) -> dict[str, Any]:
    return {"id": team.pk, "name": team.name, "role": role, "created": team.created}


def member_out(membership: Membership) -> dict[str, Any]:
    return {
        "user_id": membership.user_id,
        "username": membership.user.username,
        "role": membership.role,
        "joined": membership.joined,
    }


def invite_out(invite: Invite) -> dict[str, Any]:
    return {
        "id": invite.pk,
        "team": invite.team_id,
        "team_name": invite.team.name,
        "role": invite.role,
        # As typed by whoever invited: never the account it found (services.invite_user).
        "user": invite.invitee or None,
        "email": invite.email,
        "created": invite.created,
        "expires": invite.expires,
        "created_by": invite.created_by.username if invite.created_by_id else None,
    }


TeamPageOut = page_model("TeamPageOut", TeamOut)
MemberPageOut = page_model("MemberPageOut", MemberOut)
InvitePageOut = page_model("InvitePageOut", InviteOut)


def refused(exc: services.TeamError) -> ProblemError:
    if isinstance(exc, services.LastOwner):
        return ProblemError(409, "last_owner", str(exc))
    return ProblemError(400, "refused", str(exc))


# ---- The caller's teams and invitations (before /{team_id}, which would shadow them) ----


@router.get("", response=TeamPageOut)
def team_list(request: HttpRequest, page: Query[PageQuery]) -> Any:
    """The teams you are in, with your role in each."""
    roles = services.roles_in(request.auth)
    teams = list(services.member_teams(request.auth))
    return paginate(request, teams, page, lambda team: team_out(team, roles[team.pk]))


@router.post("", response={201: TeamOut})
def team_create(request: HttpRequest, payload: TeamIn) -> Any:
    """Create a team; you are its owner."""
    team = services.create_team(request.auth, payload.name)
    return Status(201, team_out(team, Role.OWNER))


@router.get("/invitations", response=InvitePageOut)
def invitation_list(request: HttpRequest, page: Query[PageQuery]) -> Any:
    """Invitations addressed to you that are still open."""
    return paginate(request, list(services.invitations_for(request.auth)), page, invite_out)


@router.post("/invitations/{invite_id}/accept", response={200: JoinedOut, **responses(400, 404)})
def invitation_accept(request: HttpRequest, invite_id: Id) -> Any:
    """Accept an invitation addressed to you: you join its team in its role."""
    try:
        membership = services.accept(request.auth, invite_id)
    except services.TeamError as exc:
        raise refused(exc) from None
    team = membership.team
    return {"team": team.pk, "team_name": team.name, "role": membership.role}


@router.post("/invitations/{invite_id}/decline", response={204: None, **responses(404)})
def invitation_decline(request: HttpRequest, invite_id: Id) -> Any:
    """Decline an invitation addressed to you."""
    services.decline(request.auth, invite_id)
    return Status(204, None)


@router.post("/join", response={200: JoinedOut, **responses(404, 410)})
def team_join(request: HttpRequest, payload: JoinIn) -> Any:
    """Join a team with an invite link's token (the part after /invites/).

    404 for a token that matches no link; 410 for a link used, revoked or expired.
    """
    try:
        membership = services.join_by_link(payload.token, request.auth)
    except services.TeamError as exc:
        raise ProblemError(410, "invite_gone", str(exc)) from None
    team = membership.team
    return {"team": team.pk, "team_name": team.name, "role": membership.role}


# ---- One team ----------------------------------------------------------------------------


@router.get("/{team_id}", response={200: TeamDetailOut, **responses(404)})
def team_detail(request: HttpRequest, team_id: Id) -> Any:
    """A team you are in, with its members."""
    member = services.team_for(request.auth, team_id)
    members = [member_out(m) for m in services.members(member.team)]
    return {**team_out(member.team, member.role), "members": members}


@router.patch("/{team_id}", response={200: TeamOut, **responses(403, 404)})
def team_rename(request: HttpRequest, team_id: Id, payload: TeamIn) -> Any:
    """Rename the team (owners)."""
    member = services.team_for(request.auth, team_id, Role.OWNER)
    services.rename_team(member.team, payload.name)
    return team_out(member.team, member.role)


@router.delete("/{team_id}", response={204: None, **responses(403, 404)})
def team_delete(request: HttpRequest, team_id: Id) -> Any:
    """Delete the team and its flows (owners)."""
    member = services.team_for(request.auth, team_id, Role.OWNER)
    services.delete_team(member.team)
    return Status(204, None)


@router.get("/{team_id}/members", response={200: MemberPageOut, **responses(404)})
def member_list(request: HttpRequest, team_id: Id, page: Query[PageQuery]) -> Any:
    """The team's members and their roles."""
    member = services.team_for(request.auth, team_id)
    return paginate(request, list(services.members(member.team)), page, member_out)


@router.patch(
    "/{team_id}/members/{user_id}", response={200: MemberOut, **responses(400, 403, 404, 409)}
)
def member_role(request: HttpRequest, team_id: Id, user_id: Id, payload: RoleIn) -> Any:
    """Change a member's role (owners); 409 when it would leave the team without an owner."""
    member = services.team_for(request.auth, team_id, Role.OWNER)
    try:
        membership = services.change_role(member.team, user_id, payload.role)
    except services.TeamError as exc:
        raise refused(exc) from None
    return member_out(membership)


@router.delete("/{team_id}/members/{user_id}", response={204: None, **responses(403, 404, 409)})
def member_remove(request: HttpRequest, team_id: Id, user_id: Id) -> Any:
    """Remove a member (owners), or yourself (anyone: the same as leaving)."""
    needed = Role.VIEWER if user_id == request.auth.pk else Role.OWNER
    member = services.team_for(request.auth, team_id, needed)
    try:
        services.remove_member(member.team, user_id)
    except services.TeamError as exc:
        raise refused(exc) from None
    return Status(204, None)


@router.post("/{team_id}/leave", response={204: None, **responses(404, 409)})
def team_leave(request: HttpRequest, team_id: Id) -> Any:
    """Leave the team; 409 for its last owner."""
    member = services.team_for(request.auth, team_id)
    try:
        services.leave(member.team, request.auth)
    except services.TeamError as exc:
        raise refused(exc) from None
    return Status(204, None)


@router.get("/{team_id}/invites", response={200: InvitePageOut, **responses(403, 404)})
def invite_list(request: HttpRequest, team_id: Id, page: Query[PageQuery]) -> Any:
    """The team's open invitations (personal ones and links; owners)."""
    member = services.team_for(request.auth, team_id, Role.OWNER)
    return paginate(request, list(services.team_invites(member.team)), page, invite_out)


@router.post("/{team_id}/invites", response={201: InviteCreatedOut, **responses(400, 403, 404)})
def invite_create(request: HttpRequest, team_id: Id, payload: InviteIn) -> Any:
    """Invite a user by name or e-mail, or (without ``user``) make a single-use link."""
    member = services.team_for(request.auth, team_id, Role.OWNER)
    try:
        if payload.user:
            invite = services.invite_user(member.team, request.auth, payload.user, payload.role)
            return Status(201, invite_out(invite))
        invite, raw = services.create_invite_link(
            member.team, request.auth, payload.role, payload.expires_in_days
        )
    except services.TeamError as exc:
        raise refused(exc) from None
    url = reverse("invite_join", args=[raw])
    return Status(201, {**invite_out(invite), "token": raw, "url": url})


@router.delete("/{team_id}/invites/{invite_id}", response={204: None, **responses(403, 404)})
def invite_revoke(request: HttpRequest, team_id: Id, invite_id: Id) -> Any:
    """Revoke an invitation or link (owners)."""
    member = services.team_for(request.auth, team_id, Role.OWNER)
    services.revoke_invite(member.team, invite_id)
    return Status(204, None)
