"""Run again, re-run from a node, resume: the run page's forms, each starting a new run.

Plain HTML forms (POST + CSRF). Each view asks for the editor role, lets
webapp.runs.services validate and store the new run (nothing is stored when the engine
says no; a stored run starts once it commits) and redirects to its page. A refused
request gets its form back, filled as posted, with the problems on the fields they are
about.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from graphs.errors import FlowInvalid
from webapp.execution.plans import compiled_graph
from webapp.flows.access import can_edit_flow
from webapp.runs import limits, services
from webapp.runs.access import run_for_editor
from webapp.runs.models import Run, RunEvent
from webapp.runs.views import field_text, input_fields

INPUT_PREFIX = "in_"
PORT_PREFIX = "port_"

RELATIONS = {
    Run.Kind.RERUN: "re-run of",
    Run.Kind.RESUME: "resumed from",
    Run.Kind.FROM_NODE: "from node",
    Run.Kind.SUBFLOW: "called by node",
}


def parse_value(text: str) -> Any:
    """A form field's value: JSON when it reads as JSON, else the text (field_text inverted).

    >>> parse_value("42"), parse_value('"42"'), parse_value("hello"), parse_value('{"a": 1}')
    (42, '42', 'hello', {'a': 1})
    """
    try:
        return json.loads(text)
    except ValueError:
        return text


def rows_for(text: str) -> int:
    return min(max(text.count("\n") + 1, len(text) // 48 + 1), 8)


# What the run page and the inspector show (through webapp/runs/templatetags/rerun.py)


def actions_context(user, run: Run) -> dict[str, Any]:
    """The run's relation to other runs, and for editors the forms that start new ones."""
    context: dict[str, Any] = {
        "relation": RELATIONS.get(run.kind, ""),
        "parent_id": run.parent_id,
        "children": list(
            run.children.exclude(kind=Run.Kind.SUBFLOW)
            .order_by("created")
            .values("pk", "kind", "status", "from_node")
        ),
        # The runs of flows this run's nodes called (webapp.execution.subflows).
        "subflow_runs": list(
            run.children.filter(kind=Run.Kind.SUBFLOW)
            .order_by("created")
            .values("pk", "status", "parent_node", "flow__name")
        ),
        "can_edit": can_edit_flow(user, run.flow_id),
    }
    if context["can_edit"]:
        context.update(
            current_version=changed_version(run),
            resumable=run.status in Run.RESUMABLE,
            fields=rerun_fields(run.graph, run.inputs),
        )
    return context


def changed_version(run: Run) -> int | None:
    """The flow's current version number when it is not the one the run ran."""
    current = run.flow.version
    return current if current != run.flow_version.number or run.graph_override else None


def rerun_fields(
    graph: dict[str, Any], values: dict[str, Any], texts: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The run form's fields for `graph`, filled with `values` (or the `texts` as posted)."""
    fields = input_fields(graph)
    for field in fields:
        name = field["name"]
        if texts is not None and name in texts:
            field["value"] = texts[name]
        elif name in values:
            field["value"] = field_text(values[name])
        field["rows"] = rows_for(field["value"])
        field["error"] = ""
    return fields


def node_actions_context(user, run: Run, node_id: str) -> dict[str, Any]:
    """The "re-run from this node" form, prefilled; `show` is False when it does not apply."""
    if not run.finished or not can_edit_flow(user, run.flow_id):
        return {"show": False}
    node = services.node_of(run.graph, node_id)
    if node is None:
        return {"show": False}
    context: dict[str, Any] = {"show": True, "problem": ""}
    try:
        ports = node_ports(run, node_id)
    except FlowInvalid as exc:
        # An old version the engine no longer accepts: say so rather than offer a dead form.
        context["problem"] = f"This run's flow cannot run again: {exc}"
        return context
    recorded = recorded_inputs(run, node_id)
    context["config_text"] = json.dumps(node.get("config") or {}, indent=2, ensure_ascii=False)
    context["config_rows"] = rows_for(context["config_text"])
    context["ports"] = port_fields(ports, recorded)
    context["errors"] = {}
    return context


def node_ports(run: Run, node_id: str) -> set[str]:
    compiled = compiled_graph(run.flow_version, run.graph_override, run.started_by_id)
    return services.input_ports(compiled, node_id)


def recorded_inputs(run: Run, node_id: str) -> dict[str, Any]:
    """What the node read the first time it started in `run` ({} if it never started)."""
    event = (
        RunEvent.objects.filter(run=run, type="node_started")
        .of_node(node_id)
        .order_by("seq")
        .values_list("payload", flat=True)
        .first()
    )
    return dict((event or {}).get("inputs") or {})


def port_fields(
    ports: set[str], recorded: dict[str, Any], texts: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    fields = []
    for port in sorted(ports | set(recorded)):
        if texts is not None and port in texts:
            value = texts[port]
        else:
            value = field_text(recorded[port]) if port in recorded else ""
        fields.append({"name": port, "value": value, "rows": rows_for(value), "error": ""})
    return fields


# The views


@login_required
@require_POST
def run_rerun(request: HttpRequest, run_id: int) -> HttpResponse:
    """Run again: the same inputs or those posted (``edit``), on its version or the current one."""
    run = run_for_editor(request.user, run_id)
    on_current = request.POST.get("version") == "current"
    ignore_cache = "ignore_cache" in request.POST
    inputs: dict[str, Any] | None = None
    texts: dict[str, str] = {}
    if request.POST.get("edit"):
        texts = {
            key.removeprefix(INPUT_PREFIX): value
            for key, value in request.POST.items()
            if key.startswith(INPUT_PREFIX)
        }
        # Empty means the input's default, as in the run form.
        inputs = {name: parse_value(text) for name, text in texts.items() if text.strip()}
    try:
        new = services.create_rerun(
            run, request.user, inputs=inputs, on_current=on_current, ignore_cache=ignore_cache
        )
    except limits.RunRefused as exc:
        return _refused(request, run, f"Run #{run.pk} again", exc)
    except FlowInvalid as exc:
        graph = run.flow.current().graph if on_current else run.graph
        fields = rerun_fields(graph, run.inputs, texts if inputs is not None else None)
        form_errors = []
        by_node = {field["node"]: field for field in fields}
        for problem in exc.problems:
            if problem.node in by_node:
                by_node[problem.node]["error"] = problem.message
            else:
                form_errors.append(str(problem))
        context = {
            "run": run,
            "form": "inputs",
            "title": f"Run #{run.pk} again",
            "message": "The run cannot start.",
            "fields": fields,
            "form_errors": form_errors,
            "current_version": changed_version(run),
            "version": "current" if on_current else "run",
            "ignore_cache": ignore_cache,
        }
        return render(request, "runs/_rerun_page.html", context, status=400)
    return redirect("run_detail", new.pk)


@login_required
@require_POST
def run_rerun_from(request: HttpRequest, run_id: int, node_id: str) -> HttpResponse:
    """Re-run from a node, with its config or input port values edited (only changes count)."""
    run = run_for_editor(request.user, run_id)
    node = services.node_of(run.graph, node_id)
    if node is None:
        raise Http404("No such node.")
    ignore_cache = "ignore_cache" in request.POST
    errors: dict[str, str] = {}
    form_errors: list[str] = []
    config_text = request.POST.get("config", "")
    config = None
    if config_text.strip():
        try:
            parsed = json.loads(config_text)
        except ValueError as exc:
            errors["config"] = f"not valid JSON: {exc}"
        else:
            if not isinstance(parsed, dict):
                errors["config"] = "must be a JSON object"
            elif parsed != (node.get("config") or {}):
                config = parsed
    recorded = recorded_inputs(run, node_id)
    texts = {
        key.removeprefix(PORT_PREFIX): value
        for key, value in request.POST.items()
        if key.startswith(PORT_PREFIX)
    }
    # Only a changed value replaces what arrives: in a loop a node reads new values each
    # time, and pinning all of them to the first visit's would change what the loop does.
    port_values = {
        port: parse_value(text)
        for port, text in texts.items()
        if text.strip() and (port not in recorded or recorded[port] != parse_value(text))
    }
    if not errors:
        try:
            new = services.create_from_node(
                run,
                request.user,
                node_id,
                config=config,
                port_values=port_values,
                ignore_cache=ignore_cache,
            )
        except limits.RunRefused as exc:
            return _refused(request, run, f"Re-run #{run.pk} from node {node_id}", exc)
        except FlowInvalid as exc:
            about_node = [p.message for p in exc.problems if p.node == node_id]
            if about_node:
                errors["config"] = "; ".join(about_node)
            form_errors += [str(p) for p in exc.problems if p.node != node_id]
        except ValueError as exc:
            form_errors.append(str(exc))
        else:
            return redirect("run_detail", new.pk)
    try:
        ports = node_ports(run, node_id)
    except FlowInvalid:
        ports = set()
    context = {
        "run": run,
        "node_id": node_id,
        "form": "from_node",
        "title": f"Re-run #{run.pk} from node {node_id}",
        "message": "The run cannot start.",
        "config_text": config_text,
        "config_rows": rows_for(config_text),
        "ports": port_fields(ports, recorded, texts),
        "errors": errors,
        "form_errors": form_errors,
        "ignore_cache": ignore_cache,
    }
    return render(request, "runs/_rerun_page.html", context, status=400)


@login_required
@require_POST
def run_resume(request: HttpRequest, run_id: int) -> HttpResponse:
    """Resume a failed or cancelled run: only what did not finish runs again."""
    run = run_for_editor(request.user, run_id)
    try:
        new = services.create_resume(run, request.user)
    except services.NotResumable as exc:
        status, message = 409, str(exc)
    except FlowInvalid as exc:
        status, message = 400, f"The run cannot resume: {exc}"
    except limits.RunRefused as exc:
        return _refused(request, run, f"Resume run #{run.pk}", exc)
    else:
        return redirect("run_detail", new.pk)
    context = {"run": run, "title": f"Resume run #{run.pk}", "message": message}
    return render(request, "runs/_rerun_page.html", context, status=status)


def _refused(request: HttpRequest, run: Run, title: str, exc: limits.RunRefused) -> HttpResponse:
    """The user is at a limit (runs in flight, storage): no form to fix, just why."""
    context = {"run": run, "title": title, "message": f"The run cannot start: {exc}."}
    return render(request, "runs/_rerun_page.html", context, status=exc.status)
