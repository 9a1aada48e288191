"""Run pages and the run panel's partials. The server renders; live.js only places."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from webapp.flows.access import can_edit_flow, flow_for_editor, flow_for_viewer
from webapp.flows.editor_api import ports_for
from webapp.runs.access import run_for_viewer
from webapp.runs.models import Run, RunEvent

RECENT_RUNS = 8
# A node's streamed text on its detail card is cut here; the recorded events keep it all.
MAX_NODE_TEXT = 20_000


def field_text(value: Any) -> str:
    """A value as the run form shows it: read back with JSON-or-text, it is the same value.

    >>> field_text("hello"), field_text("42"), field_text(42), field_text({"a": 1})
    ('hello', '"42"', '42', '{"a": 1}')
    """
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, ensure_ascii=False)


def input_fields(graph: dict[str, Any]) -> list[dict[str, Any]]:
    """One form field per `input` node, top to bottom as drawn on the canvas."""
    fields = []
    for order, node in enumerate(graph.get("nodes", [])):
        if node.get("type") != "input":
            continue
        config = node.get("config") or {}
        position = node.get("position") or {}
        has_default = "default" in config
        fields.append(
            {
                "name": config.get("name", ""),
                "node": node["id"],
                "label": node.get("label") or "",
                "required": not has_default,
                "value": field_text(config["default"]) if has_default else "",
                "sort": (position.get("y", 0), position.get("x", 0), order),
            }
        )
    fields.sort(key=lambda field: field["sort"])
    for field in fields:
        field["rows"] = min(max(field["value"].count("\n") + 1, len(field["value"]) // 48 + 1), 6)
    return fields


def graph_steps(graph: dict[str, Any]) -> list[dict[str, str]]:
    """The nodes of a flow version, in drawing order, for the run's step list."""
    nodes = graph.get("nodes", [])
    order = {id(node): i for i, node in enumerate(nodes)}

    def where(node: dict[str, Any]) -> tuple[float, float, int]:
        position = node.get("position") or {}
        return (position.get("x", 0), position.get("y", 0), order[id(node)])

    return [
        {"id": node["id"], "label": node.get("label") or node["id"], "type": node.get("type", "")}
        for node in sorted(nodes, key=where)
    ]


def pretty(value: Any) -> str:
    """Strings as they are; anything else as indented JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def seconds_between(start, end) -> float | None:
    if start is None:
        return None
    return ((end or timezone.now()) - start).total_seconds()


def canvas_data(run: Run) -> dict[str, Any]:
    """What canvas.js reads from #editor-data, for the run's version drawn read-only."""
    graph = run.flow_version.graph
    return {
        # Not the flow's id: the editor keeps unsaved drafts per flow, never shown here.
        "flowId": f"run-{run.pk}",
        "name": run.flow.name,
        "version": run.flow_version.number,
        "editable": False,
        "doc": graph,
        "ports": {
            node["id"]: ports_for(node.get("type", ""), node.get("config") or {})
            for node in graph.get("nodes", [])
        },
        "palette": {},
        "urls": {
            "flow": "",
            "ports": "/api/editor/ports",
            "layout": "/api/editor/layout",
            "nodeForm": "",
        },
    }


@login_required
def run_form(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = flow_for_editor(request.user, flow_id)
    version = flow.current()
    context = {"flow": flow, "version": version, "fields": input_fields(version.graph)}
    return render(request, "runs/_run_form.html", context)


@login_required
def recent_runs(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = flow_for_viewer(request.user, flow_id)
    runs = list(flow.runs.select_related("flow_version").order_by("-created")[:RECENT_RUNS])
    active = next((run for run in runs if not run.finished), None)
    return render(request, "runs/_recent_runs.html", {"flow": flow, "runs": runs, "active": active})


@login_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = run_for_viewer(request.user, run_id)
    version = run.flow_version
    context = {
        "run": run,
        "flow": run.flow,
        "version": version,
        "graph": version.graph,
        "canvas_data": canvas_data(run),
        "steps": graph_steps(version.graph),
        "inputs": [(name, pretty(value)) for name, value in run.inputs.items()],
        "outputs": _outputs(run),
        "can_cancel": can_edit_flow(request.user, run.flow_id),
        "duration_s": seconds_between(run.started_at, run.finished_at),
        "server_now": timezone.now().timestamp(),
    }
    return render(request, "runs/detail.html", context)


@login_required
def run_outputs(request: HttpRequest, run_id: int) -> HttpResponse:
    run = run_for_viewer(request.user, run_id)
    context = {
        "run": run,
        "outputs": _outputs(run),
        "duration_s": seconds_between(run.started_at, run.finished_at),
    }
    return render(request, "runs/_outputs.html", context)


@login_required
def run_steps(request: HttpRequest, run_id: int) -> HttpResponse:
    run = run_for_viewer(request.user, run_id)
    steps = graph_steps(run.flow_version.graph)
    return render(request, "runs/_steps.html", {"run": run, "steps": steps})


@login_required
def node_detail(request: HttpRequest, run_id: int, node_id: str) -> HttpResponse:
    run = run_for_viewer(request.user, run_id)
    graph_node = next(
        (n for n in run.flow_version.graph.get("nodes", []) if n["id"] == node_id), None
    )
    events = RunEvent.objects.filter(run=run, payload__node=node_id).order_by("seq")
    context = {
        "run": run,
        "node_id": node_id,
        "node": graph_node,
        "visits": _visits(events.values_list("payload", flat=True)),
    }
    return render(request, "runs/_node.html", context)


def _outputs(run: Run) -> list[tuple[str, str, bool]]:
    return [(name, pretty(value), isinstance(value, str)) for name, value in run.outputs.items()]


def _visits(payloads) -> list[dict[str, Any]]:
    """A node's events folded into one card per iteration."""
    visits: dict[int, dict[str, Any]] = {}
    for event in payloads:
        visit = visits.setdefault(
            event.get("iteration", 1),
            {"iteration": event.get("iteration", 1), "status": "queued", "text": [], "notes": []},
        )
        kind = event["type"]
        if kind == "node_started":
            visit["status"] = "running"
            visit["inputs"] = [(k, pretty(v)) for k, v in (event.get("inputs") or {}).items()]
        elif kind == "node_delta":
            visit["text"].append(event.get("text", ""))
        elif kind == "node_progress":
            visit["progress"] = (event.get("done"), event.get("total"))
        elif kind == "node_retrying":
            visit["text"] = []
            visit["notes"].append(
                f"attempt {event.get('attempt')} failed: {event.get('error')}; "
                f"retrying in {event.get('delay_s', 0):g} s"
            )
        elif kind == "node_finished":
            visit["status"] = "done"
            visit["duration_s"] = event.get("duration_s")
            visit["output"] = [(k, pretty(v)) for k, v in (event.get("output") or {}).items()]
            visit["usage"] = event.get("usage")
            visit["model"] = event.get("model")
            visit["detail"] = [(k, pretty(v)) for k, v in (event.get("detail") or {}).items() if v]
        elif kind == "node_skipped":
            visit["status"] = "skipped"
        elif kind == "node_failed":
            cancelled = bool(event.get("cancelled"))
            visit["status"] = "cancelled" if cancelled else "failed"
            error = event.get("error", "")
            # "cancelled" says nothing the status does not; other reasons are worth showing.
            visit["error"] = "" if cancelled and error == "cancelled" else error
    for visit in visits.values():
        text = "".join(visit["text"])
        visit["truncated"] = len(text) > MAX_NODE_TEXT
        visit["text"] = text[:MAX_NODE_TEXT]
    return [visits[k] for k in sorted(visits)]
