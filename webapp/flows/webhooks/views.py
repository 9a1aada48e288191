"""The Webhooks page of a flow (editors): make hooks, see their URL and deliveries, turn
them off and on, rotate their secret, delete them. A new or rotated secret is rendered
into that one response, and never shown again."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from webapp.flows.access import flow_for_editor
from webapp.flows.models import Flow, Webhook
from webapp.flows.webhooks import service
from webapp.flows.webhooks.receive import hook_url

DELIVERIES_SHOWN = 10


class HookForm(forms.Form):
    name = forms.CharField(max_length=100)
    per_minute = forms.IntegerField(min_value=1, max_value=service.MAX_PER_MINUTE, initial=60)


@login_required
def hook_page(request: HttpRequest, flow_id: int) -> HttpResponse:
    """The list (GET), or a new hook made from the form (POST)."""
    flow = flow_for_editor(request.user, flow_id)
    if request.method == "POST":
        form = HookForm(request.POST)
        if form.is_valid():
            hook = service.create(
                flow, request.user, form.cleaned_data["name"], {}, form.cleaned_data["per_minute"]
            )
            return _page(request, flow, HookForm(), revealed=hook)
        return _page(request, flow, form, status=400)
    return _page(request, flow, HookForm())


@login_required
@require_POST
def hook_toggle(request: HttpRequest, flow_id: int, hook_id: int) -> HttpResponse:
    flow = flow_for_editor(request.user, flow_id)
    hook = _hook(flow, hook_id)
    hook.enabled = not hook.enabled
    hook.save(update_fields=["enabled"])
    state = "on: it starts runs again" if hook.enabled else "off: its URL answers 404"
    messages.success(request, f"{hook.name} is {state}.")
    return redirect(reverse("flow_webhooks", args=[flow.pk]))


@login_required
@require_POST
def hook_rotate(request: HttpRequest, flow_id: int, hook_id: int) -> HttpResponse:
    flow = flow_for_editor(request.user, flow_id)
    hook = service.rotate(_hook(flow, hook_id))
    return _page(request, flow, HookForm(), revealed=hook)


@login_required
@require_POST
def hook_delete(request: HttpRequest, flow_id: int, hook_id: int) -> HttpResponse:
    flow = flow_for_editor(request.user, flow_id)
    hook = _hook(flow, hook_id)
    hook.delete()
    messages.success(request, f"Deleted {hook.name}: its URL answers 404 from now on.")
    return redirect(reverse("flow_webhooks", args=[flow.pk]))


def _hook(flow: Flow, hook_id: int) -> Webhook:
    hook = flow.webhooks.filter(pk=hook_id).first()
    if hook is None:
        raise Http404("The flow has no such hook.")
    return hook


def _page(
    request: HttpRequest,
    flow: Flow,
    form: HookForm,
    revealed: Webhook | None = None,
    status: int = 200,
) -> HttpResponse:
    hooks: list[dict[str, Any]] = [
        {
            "hook": hook,
            "url": hook_url(request, hook),
            "deliveries": list(hook.deliveries.all()[:DELIVERIES_SHOWN]),
        }
        for hook in flow.webhooks.select_related("created_by")
    ]
    context = {"flow": flow, "hooks": hooks, "form": form, "revealed": revealed}
    return render(request, "flows/webhooks.html", context, status=status)
