"""A flow's Schedules page (``/flows/{id}/schedules/``): its schedules with their next five
fire times, and one schedule's tick history with links to the runs. Viewers see it all;
editors create, enable, disable and delete (plain forms, answered with a redirect, or
with the page and its errors)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from graphs.errors import FlowInvalid
from webapp.flows.access import can_edit_flow, flow_for_editor, flow_for_viewer
from webapp.flows.models import Flow
from webapp.schedules import service, timing
from webapp.schedules.models import Schedule

TICKS_PER_PAGE = 50


class ScheduleForm(forms.Form):
    cron = forms.CharField(
        max_length=200,
        help_text="minute hour day-of-month month day-of-week, e.g. 0 9 * * MON-FRI",
    )
    timezone = forms.CharField(max_length=64, initial="UTC", help_text="An IANA name")
    inputs = forms.CharField(
        required=False,
        initial="{}",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="The flow's inputs as a JSON object",
    )
    overlap = forms.ChoiceField(choices=Schedule.Overlap.choices, initial="skip")


def _schedule_of(flow: Flow, schedule_id: int) -> Schedule:
    schedule = flow.schedules.select_related("created_by").filter(pk=schedule_id).first()
    if schedule is None:
        raise Http404("No such schedule.")
    return schedule


def _page(request: HttpRequest, flow: Flow, form: ScheduleForm, status: int = 200) -> HttpResponse:
    now = timezone.now()
    schedules = [
        (
            schedule,
            service.next_fires(schedule, now),
            schedule.ticks.first(),
            json.dumps(schedule.inputs, ensure_ascii=False),
        )
        for schedule in flow.schedules.select_related("created_by")
    ]
    context = {
        "flow": flow,
        "schedules": schedules,
        "form": form,
        "can_edit": can_edit_flow(request.user, flow.pk),
    }
    return render(request, "schedules/list.html", context, status=status)


@login_required
@require_GET
def schedule_list(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = flow_for_viewer(request.user, flow_id)
    return _page(request, flow, ScheduleForm())


@login_required
@require_POST
def schedule_create(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = flow_for_editor(request.user, flow_id)
    form = ScheduleForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            inputs: Any = json.loads(data["inputs"] or "{}")
        except ValueError as exc:
            form.add_error("inputs", f"not JSON: {exc}")
        else:
            try:
                service.create(
                    flow,
                    request.user,
                    cron=data["cron"],
                    timezone=data["timezone"].strip(),
                    inputs=inputs,
                    overlap=data["overlap"],
                    enabled=True,
                    now=timezone.now(),
                )
            except timing.BadSchedule as exc:
                form.add_error(exc.field, exc.message)
            except service.BadInputs as exc:
                form.add_error("inputs", str(exc))
            except FlowInvalid as exc:
                form.add_error(None, f"the flow cannot run, so it cannot be scheduled: {exc}")
            else:
                messages.success(request, "Schedule created.")
                return redirect("flow_schedules", flow.pk)
    return _page(request, flow, form, status=400)


@login_required
@require_POST
def schedule_toggle(request: HttpRequest, flow_id: int, schedule_id: int) -> HttpResponse:
    """Enable or disable (``enabled`` = 1 or 0)."""
    flow = flow_for_editor(request.user, flow_id)
    schedule = _schedule_of(flow, schedule_id)
    enabled = request.POST.get("enabled") == "1"
    service.update(schedule, {"enabled": enabled}, now=timezone.now())
    messages.success(request, "Schedule enabled." if enabled else "Schedule disabled.")
    return redirect("flow_schedules", flow.pk)


@login_required
@require_POST
def schedule_delete(request: HttpRequest, flow_id: int, schedule_id: int) -> HttpResponse:
    flow = flow_for_editor(request.user, flow_id)
    _schedule_of(flow, schedule_id).delete()
    messages.success(request, "Schedule deleted.")
    return redirect("flow_schedules", flow.pk)


@login_required
@require_GET
def schedule_ticks(request: HttpRequest, flow_id: int, schedule_id: int) -> HttpResponse:
    flow = flow_for_viewer(request.user, flow_id)
    schedule = _schedule_of(flow, schedule_id)
    page = Paginator(service.history(schedule), TICKS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "flow": flow,
        "schedule": schedule,
        "page": page,
        "next_fires": service.next_fires(schedule, timezone.now()),
        "at_least": timing.MAX_COUNTED,
    }
    return render(request, "schedules/ticks.html", context)
