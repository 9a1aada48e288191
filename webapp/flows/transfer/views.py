"""Pages to export a flow or a version (a download) and to import a document, from a file
or pasted, as a new flow or as a new version of a flow. See ``service.py``."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from graphs.errors import FlowInvalid, Problem
from webapp.flows import services
from webapp.flows.access import flow_for_editor, flow_for_viewer
from webapp.flows.models import Flow
from webapp.flows.transfer import service as transfer
from webapp.flows.versions import service as versions

PERSONAL = "personal"
# Room for the form's other fields and the multipart framing around the document.
FORM_SLACK_BYTES = 64 * 1024


class DocumentForm(forms.Form):
    """A flow document as a file or as pasted text (exactly one of them)."""

    file = forms.FileField(
        required=False,
        label="JSON file",
        widget=forms.ClearableFileInput(attrs={"accept": ".json,application/json"}),
    )
    text = forms.CharField(
        required=False,
        label="…or paste the JSON",
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false", "class": "mono"}),
        strip=False,
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        upload, text = data.get("file"), data.get("text") or ""
        if upload and text.strip():
            raise forms.ValidationError("Choose a file or paste the JSON, not both.")
        if not upload and not text.strip():
            raise forms.ValidationError("Choose a JSON file or paste a flow document.")
        return data

    def source(self) -> str | bytes:
        """The document's text; a file over the size limit is refused before it is read."""
        upload = self.cleaned_data.get("file")
        if not upload:
            return self.cleaned_data["text"]
        limit = settings.API_MAX_BODY_BYTES
        if upload.size > limit:
            raise FlowInvalid(
                [Problem(f"the document is {upload.size:,} bytes; the limit is {limit:,}")]
            )
        return upload.read()


class ImportFlowForm(DocumentForm):
    name = forms.CharField(
        required=False, max_length=200, label="Name", help_text="Empty: the document's name."
    )
    space = forms.ChoiceField(label="Space")

    def __init__(self, *args: Any, teams: list, **kwargs: Any):
        super().__init__(*args, **kwargs)
        choices = [(PERSONAL, "Personal (only you)")]
        choices += [(str(team.pk), f"Team: {team.name}") for team in teams]
        self.fields["space"].choices = choices


class ImportVersionForm(DocumentForm):
    message = forms.CharField(
        required=False, max_length=500, label="Describe this version", initial=""
    )
    base_version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)


def too_large(request: HttpRequest) -> HttpResponse | None:
    """A clear refusal for a body over the limit, before anything reads it.

    Django refuses an oversized form field with a bare "400 Bad Request" while the CSRF
    check reads the form, so the import views check size first and CSRF right after.
    """
    if request.method != "POST":
        return None
    limit = settings.API_MAX_BODY_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= limit + FORM_SLACK_BYTES:
        try:
            request.POST  # noqa: B018 (parsing the form raises for a field over the limit)
        except RequestDataTooBig:
            pass
        else:
            return None
    text = f"Not imported: the request is {length:,} bytes; the limit is {limit:,}."
    return render(request, "flows/import_refused.html", {"message": text}, status=413)


@login_required
@require_GET
def flow_export(request: HttpRequest, flow_id: int) -> HttpResponse:
    """``?version=N`` (default: the newest) as a JSON file."""
    flow = flow_for_viewer(request.user, flow_id)
    try:
        number = int(request.GET.get("version") or flow.version)
    except ValueError:
        return HttpResponseBadRequest("version is a version number")
    return transfer.export_response(flow, versions.get(flow, number))


@login_required
@csrf_exempt  # the size check comes first; _flow_import checks CSRF (csrf_protect)
@require_http_methods(["GET", "POST"])
def flow_import(request: HttpRequest) -> HttpResponse:
    return too_large(request) or _flow_import(request)


@csrf_protect
def _flow_import(request: HttpRequest) -> HttpResponse:
    teams = transfer.teams_for_import(request.user)
    if request.method != "POST":
        form = ImportFlowForm(teams=teams, initial={"space": PERSONAL})
        return render(request, "flows/import.html", {"form": form, "flow": None})
    form = ImportFlowForm(request.POST, request.FILES, teams=teams)
    problems: list[str] = []
    if form.is_valid():
        space = form.cleaned_data["space"]
        team = next((t for t in teams if str(t.pk) == space), None)
        try:
            flow = transfer.import_flow(
                request.user, form.source(), form.cleaned_data["name"], team=team
            )
        except FlowInvalid as exc:
            problems = [str(problem) for problem in exc.problems]
        else:
            messages.success(request, f"Imported “{flow.name}”.")
            return redirect("flow_editor", flow.pk)
    context = {"form": form, "flow": None, "problems": problems}
    return render(request, "flows/import.html", context, status=400)


@login_required
@csrf_exempt  # as flow_import
@require_http_methods(["GET", "POST"])
def flow_import_version(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = flow_for_editor(request.user, flow_id)
    return too_large(request) or _flow_import_version(request, flow)


@csrf_protect
def _flow_import_version(request: HttpRequest, flow: Flow) -> HttpResponse:
    if request.method != "POST":
        form = ImportVersionForm(initial={"base_version": flow.version})
        return render(request, "flows/import.html", {"form": form, "flow": flow})
    form = ImportVersionForm(request.POST, request.FILES)
    problems: list[str] = []
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        try:
            number = transfer.import_version(
                flow, request.user, form.source(), data["base_version"], data["message"]
            )
        except FlowInvalid as exc:
            problems = [str(problem) for problem in exc.problems]
        except services.StaleVersion as exc:
            status = 409
            problems = [
                f"Someone saved version {exc.current} since this page was loaded; nothing "
                "was imported. Look at the history, then import again."
            ]
            form = ImportVersionForm(
                initial={
                    "base_version": exc.current,
                    "message": data["message"],
                    "text": data["text"],
                }
            )
        else:
            messages.success(request, f"Imported the document as version {number}.")
            return redirect(reverse("flow_versions", args=[flow.pk]))
    context = {"form": form, "flow": flow, "problems": problems}
    return render(request, "flows/import.html", context, status=status)
