"""Comparing two runs of a flow: the page, and the picker the run page loads."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from webapp.runs.access import run_for_viewer
from webapp.runs.compare import (
    MAX_DIFF_CHARS,
    CompareRefused,
    change_lines,
    compare_runs,
    runs_to_compare,
)
from webapp.runs.models import Run

MAX_CHOICES = 50


def parse_run_id(value: str | None) -> int | None:
    """A run id from a query parameter, or None.

    >>> parse_run_id("12"), parse_run_id(" 7 "), parse_run_id("x"), parse_run_id(None)
    (12, 7, None, None)
    >>> parse_run_id("-3"), parse_run_id("99999999999999999999")
    (None, None)
    """
    try:
        number = int((value or "").strip())
    except ValueError:
        return None
    # Out of range for the id column: the same as no such run, without a database error.
    return number if 0 < number < 2**63 else None


@login_required
def run_compare(request: HttpRequest) -> HttpResponse:
    try:
        a, b = runs_to_compare(
            request.user, parse_run_id(request.GET.get("a")), parse_run_id(request.GET.get("b"))
        )
    except CompareRefused as refused:
        return render(request, "runs/compare_refused.html", {"reason": str(refused)}, status=400)
    comparison = compare_runs(a, b)
    context = {
        "c": comparison,
        "a": a,
        "b": b,
        "flow": a.flow,
        "changed_nodes": change_lines(comparison.graph_diff),
        "max_diff_chars": f"{MAX_DIFF_CHARS:,}",
    }
    return render(request, "runs/compare.html", context)


@login_required
def compare_picker(request: HttpRequest, run_id: int) -> HttpResponse:
    """The run page's "compare with" form, loaded by htmx so the page's view need not know."""
    run = run_for_viewer(request.user, run_id)
    choices = list(
        Run.objects.filter(flow_id=run.flow_id)
        .exclude(pk=run.pk)
        .select_related("flow_version")
        .order_by("-created", "-pk")[:MAX_CHOICES]
    )
    context = {"run": run, "compare_choices": choices, "selected": default_choice(run, choices)}
    return render(request, "runs/_compare_picker.html", context)


def default_choice(run: Run, choices: list[Run]) -> int | None:
    """The run this one most likely differs from: its parent, else the one just before it."""
    ids = {choice.pk for choice in choices}
    if run.parent_id in ids:
        return run.parent_id
    earlier = [choice for choice in choices if choice.created < run.created]
    if earlier:
        return earlier[0].pk
    return choices[0].pk if choices else None
