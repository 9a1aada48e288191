"""Team pages: the list with invitations, a team's members and invitations, joining by link.

A team's pages are a 404 for anyone outside it; changing it needs the owner role (403).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from webapp.teams import services
from webapp.teams.forms import InviteForm, InviteLinkForm, RoleForm, TeamForm
from webapp.teams.models import Role


def _list_page(request: HttpRequest, form: TeamForm, status: int = 200) -> HttpResponse:
    roles = services.roles_in(request.user)
    teams = services.member_teams(request.user).annotate(
        member_count=Count("memberships", distinct=True), flow_count=Count("flows", distinct=True)
    )
    context = {
        "teams": [(team, roles.get(team.pk)) for team in teams],
        "invitations": services.invitations_for(request.user),
        "form": form,
    }
    return render(request, "teams/list.html", context, status=status)


@login_required
def team_list(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _list_page(request, TeamForm())
    form = TeamForm(request.POST)
    if not form.is_valid():
        return _list_page(request, form, status=400)
    team = services.create_team(request.user, form.cleaned_data["name"])
    messages.success(request, f"Created the team “{team.name}”. You are its owner.")
    return redirect("team_detail", team.pk)


def _detail_page(
    request: HttpRequest, member: services.Member, status: int = 200, **extra: Any
) -> HttpResponse:
    team = member.team
    is_owner = member.role == Role.OWNER
    context = {
        "team": team,
        "role": member.role,
        "is_owner": is_owner,
        "members": services.members(team),
        "flows": team.flows.select_related("owner").order_by("-updated")[:50],
        "invites": services.team_invites(team) if is_owner else [],
        "roles": Role.choices,
        "invite_form": InviteForm(),
        "link_form": InviteLinkForm(),
        "rename_form": TeamForm(initial={"name": team.name}),
        **extra,
    }
    return render(request, "teams/detail.html", context, status=status)


def _back(team_id: int) -> HttpResponse:
    return redirect("team_detail", team_id)


@login_required
def team_detail(request: HttpRequest, team_id: int) -> HttpResponse:
    return _detail_page(request, services.team_for(request.user, team_id))


@login_required
@require_POST
def team_rename(request: HttpRequest, team_id: int) -> HttpResponse:
    member = services.team_for(request.user, team_id, Role.OWNER)
    form = TeamForm(request.POST)
    if not form.is_valid():
        return _detail_page(request, member, status=400, rename_form=form)
    services.rename_team(member.team, form.cleaned_data["name"])
    messages.success(request, f"Renamed the team to “{member.team.name}”.")
    return _back(team_id)


@login_required
def team_delete(request: HttpRequest, team_id: int) -> HttpResponse:
    member = services.team_for(request.user, team_id, Role.OWNER)
    team = member.team
    if request.method == "POST":
        name = team.name
        services.delete_team(team)
        messages.success(request, f"Deleted the team “{name}” and its flows.")
        return redirect("team_list")
    context = {"team": team, "flow_count": team.flows.count()}
    return render(request, "teams/delete.html", context)


@login_required
@require_POST
def member_role(request: HttpRequest, team_id: int, user_id: int) -> HttpResponse:
    member = services.team_for(request.user, team_id, Role.OWNER)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose owner, editor or viewer.")
        return _back(team_id)
    try:
        membership = services.change_role(member.team, user_id, form.cleaned_data["role"])
    except services.TeamError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{membership.user.username} is now {membership.role}.")
    return _back(team_id)


@login_required
@require_POST
def member_remove(request: HttpRequest, team_id: int, user_id: int) -> HttpResponse:
    member = services.team_for(request.user, team_id, Role.OWNER)
    try:
        membership = services.remove_member(member.team, user_id)
    except services.TeamError as exc:
        messages.error(request, str(exc))
        return _back(team_id)
    if membership.user_id == request.user.pk:
        messages.success(request, f"You left “{member.team.name}”.")
        return redirect("team_list")
    messages.success(request, f"Removed {membership.user.username} from the team.")
    return _back(team_id)


@login_required
@require_POST
def team_leave(request: HttpRequest, team_id: int) -> HttpResponse:
    member = services.team_for(request.user, team_id)
    try:
        services.leave(member.team, request.user)
    except services.TeamError as exc:
        messages.error(request, str(exc))
        return _back(team_id)
    messages.success(request, f"You left “{member.team.name}”.")
    return redirect("team_list")


@login_required
@require_POST
def invite_create(request: HttpRequest, team_id: int) -> HttpResponse:
    member = services.team_for(request.user, team_id, Role.OWNER)
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invite = services.invite_user(
                member.team, request.user, form.cleaned_data["who"], form.cleaned_data["role"]
            )
        except services.TeamError as exc:
            form.add_error("who", str(exc))
        else:
            # The same words whether or not the name found an account (services.invite_user).
            messages.success(
                request,
                f"Invited “{invite.invitee}” as {invite.role}. "
                "If they have an account, the invitation waits on their Teams page.",
            )
            return _back(team_id)
    return _detail_page(request, member, status=400, invite_form=form)


@login_required
@require_POST
def invite_link_create(request: HttpRequest, team_id: int) -> HttpResponse:
    member = services.team_for(request.user, team_id, Role.OWNER)
    form = InviteLinkForm(request.POST)
    if not form.is_valid():
        return _detail_page(request, member, status=400, link_form=form)
    invite, raw = services.create_invite_link(
        member.team, request.user, form.cleaned_data["role"], form.cleaned_data["days"]
    )
    # Rendered into this response, never redirected through the session: the raw link
    # must not be stored anywhere, so this page is the only time it exists.
    link = request.build_absolute_uri(reverse("invite_join", args=[raw]))
    return _detail_page(request, member, new_link=link, new_link_invite=invite)


@login_required
@require_POST
def invite_revoke(request: HttpRequest, team_id: int, invite_id: int) -> HttpResponse:
    member = services.team_for(request.user, team_id, Role.OWNER)
    services.revoke_invite(member.team, invite_id)
    messages.success(request, "Withdrew the invitation.")
    return _back(team_id)


@login_required
@require_POST
def invitation_accept(request: HttpRequest, invite_id: int) -> HttpResponse:
    invite = services.invitation_for(request.user, invite_id)
    try:
        membership = services.accept(request.user, invite.pk)
    except services.TeamError as exc:
        messages.error(request, str(exc))
        return redirect("team_list")
    messages.success(request, f"You joined “{invite.team.name}” as {membership.role}.")
    return _back(invite.team_id)


@login_required
@require_POST
def invitation_decline(request: HttpRequest, invite_id: int) -> HttpResponse:
    invite = services.decline(request.user, invite_id)
    messages.success(request, f"Declined the invitation to “{invite.team.name}”.")
    return redirect("team_list")


@login_required
def invite_join(request: HttpRequest, token: str) -> HttpResponse:
    """An invite link: a page saying which team it is for, and a button that joins it."""
    invite = services.link_invite(token)
    reason = services.why_not_usable(invite)
    if reason:
        return render(request, "teams/join.html", {"reason": reason}, status=410)
    existing = services.roles_in(request.user).get(invite.team_id)
    if request.method == "POST" and existing is None:
        try:
            membership = services.join_by_link(token, request.user)
        except services.TeamError as exc:
            return render(request, "teams/join.html", {"reason": str(exc)}, status=410)
        messages.success(request, f"You joined “{invite.team.name}” as {membership.role}.")
        return _back(invite.team_id)
    context = {"invite": invite, "existing": existing, "token": token}
    return render(request, "teams/join.html", context)
