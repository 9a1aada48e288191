"""The credentials page: yours and your teams' (names and kinds), a form to add one, and
delete buttons where you may. Values are never rendered: the form's value input is a
password field that does not echo what was typed, even when the form is refused."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from webapp.credentials import service
from webapp.credentials.forms import KIND_LABELS, CredentialForm


def _refused(request: HttpRequest, form: CredentialForm) -> HttpResponse:
    # 200 rather than 400 for htmx, which swaps only a success: the form with its problems.
    return _page(request, form, 200 if request.headers.get("HX-Request") else 400)


def _page(request: HttpRequest, form: CredentialForm | None = None, status: int = 200):
    teams = service.owner_teams(request.user)
    owned = {team.pk for team in teams}
    rows = [
        {
            "credential": c,
            "label": KIND_LABELS[c.kind],
            "can_change": c.team_id is None or c.team_id in owned,
        }
        for c in service.usable(request.user)
    ]
    context = {"form": form or CredentialForm(teams=teams), "rows": rows}
    return render(request, "credentials/list.html", context, status=status)


@login_required
@require_GET
def credential_list(request: HttpRequest) -> HttpResponse:
    return _page(request)


@login_required
@require_POST
def credential_create(request: HttpRequest) -> HttpResponse:
    form = CredentialForm(request.POST, teams=service.owner_teams(request.user))
    if not form.is_valid():
        return _refused(request, form)
    data = form.cleaned_data
    try:
        credential = service.create(
            request.user, data["name"], data["kind"], data["value"], data["team"], data["header"]
        )
    except service.CredentialRefused as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        return _refused(request, form)
    messages.success(request, f"Saved the credential “{credential.name}”.")
    return redirect("credential_list")


@login_required
@require_POST
def credential_delete(request: HttpRequest, credential_id: int) -> HttpResponse:
    credential = service.for_change(request.user, credential_id)
    credential.delete()
    messages.success(request, f"Deleted the credential “{credential.name}”.")
    return redirect("credential_list")
