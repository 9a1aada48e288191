"""The share panel (owner only): shares with people and teams, transfer, read-only links;
and the recipient's answer to a share with them (accept or decline, on the flow list).

The editor's Share button loads the panel with htmx and every form in it posts back here
and gets the panel again, re-rendered with what changed. Without htmx the same URLs
answer with a whole page. Every view asks ``flow_for_owner`` first: strangers get 404,
viewers and editors 403.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from webapp.flows.access import can_view_flow, flow_for_owner
from webapp.flows.models import Flow, FlowShare
from webapp.flows.sharing import service as sharing
from webapp.runs.access import run_for_viewer
from webapp.teams.models import Membership

ROLE_CHOICES = [(FlowShare.Role.VIEWER, "can view"), (FlowShare.Role.EDITOR, "can edit")]
DAY_CHOICES = [("", "Never expires")] + [
    (str(d), f"Expires in {d} day{'s' if d > 1 else ''}") for d in sharing.LINK_DAYS
]


class ShareForm(forms.Form):
    who = forms.CharField(max_length=254, required=False)
    team = forms.IntegerField(required=False)
    role = forms.ChoiceField(choices=ROLE_CHOICES)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)


class TransferForm(forms.Form):
    who = forms.CharField(max_length=254, required=False)
    team = forms.IntegerField(required=False)


class LinkForm(forms.Form):
    days = forms.TypedChoiceField(choices=DAY_CHOICES, coerce=int, empty_value=None, required=False)
    hide_io = forms.BooleanField(required=False)


def public_url(request: HttpRequest, raw: str) -> str:
    return request.build_absolute_uri(reverse("public_share", args=[raw]))


def space_of(flow: Flow) -> str:
    return f"the team {flow.team.name}" if flow.team_id else f"{flow.owner.username}'s space"


def told_apart(teams) -> list:
    """The teams, each with a `picker_label` that tells two teams of one name apart: the
    name, and for a name that repeats, its members' count and its number."""
    teams = list(teams)
    counts = dict(
        Membership.objects.filter(team__in=teams)
        .values("team")
        .annotate(n=Count("pk"))
        .values_list("team", "n")
    )
    names = Counter(team.name for team in teams)
    for team in teams:
        n = counts.get(team.pk, 0)
        extra = f" ({n} member{'s' if n != 1 else ''}, #{team.pk})" if names[team.name] > 1 else ""
        team.picker_label = team.name + extra
    return teams


def _panel(request: HttpRequest, flow: Flow, status: int = 200, **extra: Any) -> HttpResponse:
    context = {
        "flow": flow,
        "space": space_of(flow),
        "shares": sharing.shares(flow),
        "my_teams": told_apart(sharing.share_teams(request.user).exclude(pk=flow.team_id or 0)),
        "targets": told_apart(sharing.transfer_targets(flow, request.user)),
        "links": [(link, sharing.is_live(link)) for link in sharing.links(flow)],
        "role_choices": ROLE_CHOICES,
        "day_choices": DAY_CHOICES,
        **extra,
    }
    if request.headers.get("HX-Request"):
        return render(request, "flows/_share_panel.html", context, status=status)
    return render(request, "flows/_share_page.html", context, status=status)


def _problem(request: HttpRequest, flow: Flow, message: str) -> HttpResponse:
    # 200 rather than 400 for htmx: it swaps the panel, with the problem shown in it.
    status = 200 if request.headers.get("HX-Request") else 400
    return _panel(request, flow, status=status, problem=message)


@login_required
def flow_share(request: HttpRequest, flow_id: int) -> HttpResponse:
    return _panel(request, flow_for_owner(request.user, flow_id))


@login_required
@require_POST
def share_create(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = flow_for_owner(request.user, flow_id)
    form = ShareForm(request.POST)
    if not form.is_valid():
        return _problem(request, flow, "Choose a person or a team, and viewer or editor.")
    data = form.cleaned_data
    try:
        if data["team"]:
            share = sharing.share_with_team(flow, request.user, data["team"], data["role"])
        else:
            share = sharing.share_with_user(flow, request.user, data["who"], data["role"])
    except sharing.ShareError as exc:
        return _problem(request, flow, str(exc))
    if share.pending:
        # The same words whether or not the name found an account (sharing.share_with_user).
        notice = (
            f"Shared with “{share.invitee}” ({share.role}). If they have an account, "
            "the flow waits for them to accept it."
        )
    else:
        notice = f"Shared with {share.shown_name} ({share.role})."
    return _panel(request, flow, notice=notice)


@login_required
@require_POST
def share_update(request: HttpRequest, flow_id: int, share_id: int) -> HttpResponse:
    flow = flow_for_owner(request.user, flow_id)
    share = sharing.share_of(flow, share_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _problem(request, flow, "Choose viewer or editor.")
    sharing.change_share(share, form.cleaned_data["role"])
    return _panel(request, flow, notice="Changed the share.")


@login_required
@require_POST
def share_remove(request: HttpRequest, flow_id: int, share_id: int) -> HttpResponse:
    flow = flow_for_owner(request.user, flow_id)
    sharing.remove_share(sharing.share_of(flow, share_id))
    return _panel(request, flow, notice="Removed the share.")


@login_required
@require_POST
def share_accept(request: HttpRequest, share_id: int) -> HttpResponse:
    """The recipient accepts a share waiting on their flow list: the flow opens."""
    share = sharing.accept_share(request.user, share_id)
    messages.success(request, f"“{share.flow.name}” is shared with you ({share.role}).")
    return redirect("flow_editor", share.flow_id)


@login_required
@require_POST
def share_decline(request: HttpRequest, share_id: int) -> HttpResponse:
    share = sharing.decline_share(request.user, share_id)
    messages.success(request, f"Declined “{share.flow.name}”.")
    return redirect("flow_list")


@login_required
@require_POST
def flow_transfer(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = flow_for_owner(request.user, flow_id)
    form = TransferForm(request.POST)
    if not form.is_valid():
        return _problem(request, flow, "Choose a person or a team.")
    data = form.cleaned_data
    try:
        if data["team"]:
            sharing.transfer_to_team(flow, request.user, data["team"])
        elif data["who"]:
            sharing.transfer_to_user(flow, request.user, data["who"])
        else:
            return _problem(request, flow, "Choose a person or a team.")
    except sharing.ShareError as exc:
        return _problem(request, flow, str(exc))
    messages.success(request, f"“{flow.name}” now belongs to {space_of(flow)}.")
    # The page behind the panel may no longer be theirs to see.
    where = (
        reverse("flow_editor", args=[flow.pk])
        if can_view_flow(request.user, flow.pk)
        else reverse("flow_list")
    )
    if request.headers.get("HX-Request"):
        return HttpResponse(headers={"HX-Redirect": where})
    return redirect(where)


def _link_form(request: HttpRequest) -> LinkForm | None:
    form = LinkForm(request.POST)
    return form if form.is_valid() else None


@login_required
@require_POST
def link_create(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = flow_for_owner(request.user, flow_id)
    form = _link_form(request)
    if form is None:
        return _problem(request, flow, "Choose when the link expires.")
    link, raw = sharing.create_link(
        flow,
        request.user,
        days=form.cleaned_data["days"],
        hide_io=form.cleaned_data["hide_io"],
    )
    # Rendered into this response only: the raw link is never stored, so this is the
    # one time it exists.
    return _panel(request, flow, new_link=public_url(request, raw), new_link_obj=link)


@login_required
@require_POST
def link_revoke(request: HttpRequest, flow_id: int, link_id: int) -> HttpResponse:
    flow = flow_for_owner(request.user, flow_id)
    sharing.revoke_link(sharing.link_of(flow, link_id))
    return _panel(request, flow, notice="Revoked the link: it now shows nothing.")


@login_required
def run_link(request: HttpRequest, run_id: int) -> HttpResponse:
    """The run page's "Share this run" form (GET) and making the link (POST)."""
    run = run_for_viewer(request.user, run_id)
    flow = flow_for_owner(request.user, run.flow_id)
    context: dict[str, Any] = {"run": run, "flow": flow}
    if request.method == "POST":
        form = _link_form(request)
        if form is None:
            context["problem"] = "Choose when the link expires."
        else:
            link, raw = sharing.create_link(
                flow,
                request.user,
                run=run,
                days=form.cleaned_data["days"],
                hide_io=form.cleaned_data["hide_io"],
            )
            context.update(new_link=public_url(request, raw), new_link_obj=link)
    template = (
        "flows/_share_link_form.html"
        if request.headers.get("HX-Request")
        else "flows/_share_link_page.html"
    )
    return render(request, template, context)
