"""The Chat links page of a flow (editors): make links with their allowed origins and
rates, see each one's page and embed snippet, turn them off and on, delete them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from webapp.chat import service
from webapp.chat.api import link_urls
from webapp.chat.models import ChatLink
from webapp.flows.access import flow_for_editor
from webapp.flows.models import Flow
from webapp.runs.services import version_for_outside


class LinkForm(forms.Form):
    name = forms.CharField(max_length=100)
    allowed_origins = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "https://shop.example.com"}),
        help_text="Sites that may embed the chat, one origin a line (scheme://host[:port]).",
    )
    per_minute = forms.IntegerField(min_value=1, max_value=service.MAX_PER_MINUTE, initial=60)
    per_visitor_minute = forms.IntegerField(
        min_value=1, max_value=service.MAX_PER_MINUTE, initial=10
    )

    def clean_allowed_origins(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["allowed_origins"].splitlines()]
        try:
            return service.check_origins([line for line in lines if line])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


@login_required
def link_page(request: HttpRequest, flow_id: int) -> HttpResponse:
    """The list (GET), or a new link made from the form (POST)."""
    flow = flow_for_editor(request.user, flow_id)
    if request.method == "POST":
        form = LinkForm(request.POST)
        if form.is_valid() and _chat_flow(flow):
            data = form.cleaned_data
            service.create_link(
                flow,
                request.user,
                data["name"],
                data["allowed_origins"],
                data["per_minute"],
                data["per_visitor_minute"],
            )
            messages.success(request, f"Made the chat link {data['name']}.")
            return redirect(reverse("flow_chat_links", args=[flow.pk]))
        return _page(request, flow, form, status=400)
    return _page(request, flow, LinkForm())


@login_required
@require_POST
def link_toggle(request: HttpRequest, flow_id: int, link_id: int) -> HttpResponse:
    flow = flow_for_editor(request.user, flow_id)
    link = _link(flow, link_id)
    link.enabled = not link.enabled
    link.save(update_fields=["enabled"])
    state = "on" if link.enabled else "off: its page and widget answer 404"
    messages.success(request, f"{link.name} is {state}.")
    return redirect(reverse("flow_chat_links", args=[flow.pk]))


@login_required
@require_POST
def link_delete(request: HttpRequest, flow_id: int, link_id: int) -> HttpResponse:
    flow = flow_for_editor(request.user, flow_id)
    link = _link(flow, link_id)
    link.delete()
    messages.success(request, f"Deleted {link.name} and its conversations.")
    return redirect(reverse("flow_chat_links", args=[flow.pk]))


def _chat_flow(flow: Flow) -> bool:
    return service.is_chat_flow(version_for_outside(flow))


def _link(flow: Flow, link_id: int) -> ChatLink:
    link = flow.chat_links.filter(pk=link_id).first()
    if link is None:
        raise Http404("The flow has no such chat link.")
    return link


def _page(request: HttpRequest, flow: Flow, form: LinkForm, status: int = 200) -> HttpResponse:
    links: list[dict[str, Any]] = [
        {"link": link, **link_urls(request, link)}
        for link in flow.chat_links.select_related("created_by")
    ]
    context = {"flow": flow, "links": links, "form": form, "chat_flow": _chat_flow(flow)}
    return render(request, "chat/links.html", context, status=status)
