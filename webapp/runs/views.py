"""Run pages and the run panel's partials. The server renders; static/js/runs/view.js and
replay.js only place what it renders (plus the canvas)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.db.models import FloatField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Length
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from graphs.errors import FlowInvalid
from graphs.log import Visit, fold
from graphs.tools import mcp
from webapp.core.canvas import canvas_payload
from webapp.core.format import pretty
from webapp.core.model_setup import offline_model_in_use
from webapp.flows.access import can_edit_flow, can_own_flow, flow_for_editor, flow_for_viewer
from webapp.runs import approvals, budgets, pricing
from webapp.runs import estimate as run_estimates
from webapp.runs.access import run_for_viewer, visible_runs
from webapp.runs.api import MAX_EVENTS
from webapp.runs.approval_views import approvals_context, shown_wait
from webapp.runs.budget_views import budget_context
from webapp.runs.files import file_inputs
from webapp.runs.models import Run, RunEvent
from webapp.runs.replay import GAP_CAP_S, replay_check
from webapp.runs.timeline import build_timeline

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
                "file": config.get("kind") == "file",
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


def seconds_between(start, end) -> float | None:
    if start is None:
        return None
    return ((end or timezone.now()) - start).total_seconds()


@login_required
def run_form(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = flow_for_editor(request.user, flow_id)
    version = flow.current()
    context = {"flow": flow, "version": version, "fields": input_fields(version.graph)}
    return render(request, "runs/_run_form.html", context)


def form_value(text: str) -> Any:
    """A run form field's value as runs/inputs.js reads it: JSON when it parses, else the
    text; None (left out) when empty or broken JSON (the form says so when it is sent).

    >>> form_value("42"), form_value("tea"), form_value(" "), form_value("[1,")
    (42, 'tea', None, None)
    """
    trimmed = text.strip()
    if not trimmed:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None if trimmed[0] in "[{" else text


@login_required
async def run_estimate(request: HttpRequest, flow_id: int) -> HttpResponse:
    """The run form's cost estimate for the inputs it holds (htmx, as they change)."""
    flow = await sync_to_async(flow_for_editor)(request.user, flow_id)
    version = await sync_to_async(flow.current)()
    # A file field's value is its file's name: the estimate goes without the file.
    names = {field["name"] for field in input_fields(version.graph) if not field["file"]}
    inputs = {
        name: value
        for name in names
        if (value := form_value(request.GET.get(name, ""))) is not None
    }
    context: dict[str, Any] = {"flow": flow}
    try:
        budget = budgets.budget_for(flow.budget_usd, request.GET.get("run-budget-usd", ""))
    except budgets.BudgetInvalid as exc:
        budget, context["budget_problem"] = None, str(exc)
    try:
        found = await run_estimates.estimate(flow, version, request.user, inputs)
    except FlowInvalid as exc:
        context["missing"] = "; ".join(str(p) for p in exc.problems[:3])
    else:
        context.update(
            estimate=found,
            estimate_text=pricing.format_usd(found.usd),
            sources=sorted({n.source for n in found.nodes}),
            over_budget=budget is not None and found.usd > budget,
        )
    context["budget_text"] = pricing.format_usd(budget) if budget is not None else ""
    return render(request, "runs/_estimate.html", context)


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
    graph = run.graph
    context = {
        "run": run,
        "flow": run.flow,
        "version": version,
        "graph": graph,
        "canvas_data": canvas_payload(
            graph, key=f"run-{run.pk}", name=run.flow.name, version=version.number
        ),
        "steps": graph_steps(graph),
        "replay": replay_check(run, graph),
        "gap_cap_s": GAP_CAP_S,
        "events_page": MAX_EVENTS,
        # Runs recorded before costs were have none: no figure rather than a wrong "$0".
        "cost_text": pricing.format_usd(run.cost_usd) if run.cost_usd else "",
        "saved_text": pricing.format_usd(run.saved_usd) if run.saved_usd else "",
        "provider_cache_text": _provider_cache_text(run),
        "inputs": [(name, pretty(value)) for name, value in run.inputs.items()],
        "run_files": file_inputs(run),
        "outputs": _outputs(run),
        "can_cancel": can_edit_flow(request.user, run.flow_id),
        "can_share": can_own_flow(request.user, run.flow_id),
        "duration_s": seconds_between(run.started_at, run.finished_at),
        "server_now": timezone.now().timestamp(),
        "offline_model": offline_model_in_use(run.flow.team_id, run.started_by_id),
        **approvals_context(request.user, run),
        **budget_context(request.user, run),
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
    steps = graph_steps(run.graph)
    return render(request, "runs/_steps.html", {"run": run, "steps": steps})


@login_required
def run_replay(request: HttpRequest, run_id: int) -> HttpResponse:
    """The replay bar: its controls, or why replay is unavailable or limited."""
    run = run_for_viewer(request.user, run_id)
    context = {
        "run": run,
        "replay": replay_check(run, run.graph),
        "gap_cap_s": GAP_CAP_S,
        "events_page": MAX_EVENTS,
    }
    return render(request, "runs/_replay.html", context)


# What the timeline reads; the rest (inputs, outputs, prompts) is never loaded for it.
TIMELINE_EVENTS = (
    "run_started",
    "run_finished",
    "node_started",
    "node_finished",
    "node_failed",
    "node_skipped",
    "node_delta",
    "node_waiting",
    "node_resumed",
)


@login_required
def run_timeline(request: HttpRequest, run_id: int) -> HttpResponse:
    run = run_for_viewer(request.user, run_id)
    rows = RunEvent.objects.filter(run=run, type__in=TIMELINE_EVENTS).exclude(type="node_delta")
    events = [_timeline_fields(p) for p in rows.order_by("seq").values_list("payload", flat=True)]
    timeline = build_timeline(events, graph_steps(run.graph), read_chars=lambda: _streamed(run))
    return render(request, "runs/_timeline.html", {"run": run, "t": timeline})


def _streamed(run: Run) -> list[tuple[float, int]]:
    """(ts, characters) of each node_delta, read as two numbers apiece: a long run's deltas
    are most of its log, and the timeline needs only their time and length."""
    deltas = RunEvent.objects.filter(run=run, type="node_delta").order_by("seq")
    rows = deltas.values_list(Cast(KT("payload__ts"), FloatField()), Length(KT("payload__text")))
    return [(ts, length or 0) for ts, length in rows if ts is not None]


def _timeline_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    """An event without its big fields: only what the timeline draws."""
    kept = {k: event.get(k) for k in ("type", "ts", "node", "iteration", "cancelled")}
    kept["cached"], kept["reused"] = event.get("cached"), event.get("reused")
    if event.get("usage"):
        kept["usage"] = {"output_tokens": event["usage"].get("output_tokens", 0)}
    return kept


@login_required
def node_detail(request: HttpRequest, run_id: int, node_id: str) -> HttpResponse:
    """The inspector: what one node saw, did and cost, one section per iteration.

    `?upto=SEQ` folds only the events up to that seq: the node as of a replay's position.
    """
    run = run_for_viewer(request.user, run_id)
    graph_node = next((n for n in run.graph.get("nodes", []) if n["id"] == node_id), None)
    upto = _upto(request.GET.get("upto"))
    events = RunEvent.objects.filter(run=run).of_node(node_id)
    if upto is not None:
        events = events.filter(seq__lte=upto)
    first = RunEvent.objects.filter(run=run, seq=1).values_list("payload", flat=True).first()
    visits = _visits(
        events.order_by("seq").values_list("payload", flat=True),
        start_ts=(first or {}).get("ts"),
        links=_run_links(request.user),
    )
    context = {
        "run": run,
        "node_id": node_id,
        "node": graph_node,
        "visits": visits,
        "upto": upto,
        "replaying": upto is not None and upto < run.last_seq,
        "total_cost": _total_cost(visits),
    }
    if upto is None:
        context.update(_node_wait(request.user, run, node_id, visits))
    return render(request, "runs/_node.html", context)


def _node_wait(user, run: Run, node_id: str, visits: list[dict[str, Any]]) -> dict[str, Any]:
    """A waiting node's card shows its form (the live canvas: click the node, answer)."""
    wait = approvals.waits_of(run).get(node_id)
    if wait is not None and wait.get("kind") in approvals.ANSWERED_KINDS:
        return {"wait": shown_wait(user, run, node_id, wait)}
    # The engine's node_waiting is broadcast before the driver stores the run waiting: a
    # card asked in between asks again shortly.
    last = visits[-1]["status"] if visits else None
    parking = run.status == Run.Status.RUNNING and last == "waiting"
    return {"wait_parking": parking}


def _upto(value: str | None) -> int | None:
    try:
        return max(int(value), 0) if value not in (None, "") else None
    except ValueError:
        return None


def _outputs(run: Run) -> list[tuple[str, str, bool]]:
    return _shown(run.outputs)


def _shown(values: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(name, text, whether it is text): strings as they are, other JSON values pretty."""
    return [(name, pretty(value), isinstance(value, str)) for name, value in values.items()]


def _run_links(user):
    """source run id -> that run's page, for runs this user may see."""
    cache: dict[int, str | None] = {}

    def link(run_id: int | None) -> str | None:
        if run_id is None:
            return None
        if run_id not in cache:
            visible = visible_runs(user).filter(pk=run_id).exists()
            cache[run_id] = reverse("run_detail", args=[run_id]) if visible else None
        return cache[run_id]

    return link


def _origin(value: Mapping[str, Any] | None, link) -> dict[str, Any] | None:
    """A visit's `cached` / `reused` (graphs.log.origin) as the inspector shows it."""
    if value is None:
        return None
    return {"source": value["source"], "link": link(value["run"]), "usage": value.get("usage")}


def _turn(turn: Mapping[str, Any], durations: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An agent's recorded turn (graphs.log's ``turns``) as the inspector shows it: each
    tool by the name it was picked by (``mcp:<server>/<tool>``), with how long its call took
    (`durations`: tool_use id -> ms, from the node's ``tool_calls``) once the node is done.

    >>> shown = _turn({"turn": 2, "content": [{"type": "text", "text": "ok"}], "usage": None,
    ...     "model": "m", "source": None, "tools": [{"name": "calc", "input": {"x": 1},
    ...     "content": "no", "is_error": True, "rejected": {"by": {"user": "bob"},
    ...     "reason": "why"}, "source": None}]})
    >>> shown["parts"], shown["tools"][0]["rejected_by"], shown["tools"][0]["reason"]
    ([('text', 'ok', False)], 'bob', 'why')
    """
    tools = []
    for tool in turn.get("tools") or []:
        rejected = tool.get("rejected") or {}
        by = rejected.get("by") if isinstance(rejected.get("by"), dict) else {}
        took = (durations or {}).get(tool.get("tool_use_id"))
        tools.append(
            {
                "name": mcp.shown_name(str(tool.get("name", ""))),
                "duration_ms": took if isinstance(took, int) else None,
                "input": pretty(tool.get("input")),
                "content": str(tool.get("content", ""))[:MAX_NODE_TEXT],
                "is_error": bool(tool.get("is_error")),
                "rejected": bool(rejected),
                "rejected_by": str(by.get("user") or "a person") if rejected else "",
                "reason": rejected.get("reason") or "",
            }
        )
    usage = turn.get("usage") or {}
    return {
        "turn": turn.get("turn"),
        "parts": [
            (f"tool_use {mcp.shown_name(kind[9:])}", text, True)
            if kind.startswith("tool_use ")
            else (kind, text, False)
            for kind, text in _message_parts({"content": turn.get("content") or []})
        ],
        "tokens": (usage.get("input_tokens", 0), usage.get("output_tokens", 0)) if usage else None,
        "source": turn.get("source"),
        "tools": tools,
    }


def _message_parts(message: Mapping[str, Any]) -> list[tuple[str, str]]:
    """An agent message as (kind, text) parts: its text, tool calls and tool results.

    >>> _message_parts({"role": "user", "content": "hi"})
    [('text', 'hi')]
    >>> parts = _message_parts({"role": "assistant", "content": [{"type": "text", "text": "so"},
    ...     {"type": "tool_use", "name": "calculator", "input": {"expression": "1+1"}}]})
    >>> [kind for kind, _ in parts], json.loads(parts[1][1])
    (['text', 'tool_use calculator'], {'expression': '1+1'})
    >>> _message_parts({"role": "assistant", "content": [
    ...     {"type": "thinking", "thinking": "hmm", "signature": "x"}]})
    [('thinking', 'hmm')]
    """
    content = message.get("content")
    if not isinstance(content, list):
        return [("text", pretty(content))]
    parts = []
    for block in content:
        if not isinstance(block, dict):
            parts.append(("text", pretty(block)))
        elif block.get("type") == "text":
            parts.append(("text", block.get("text", "")))
        elif block.get("type") == "tool_use":
            parts.append((f"tool_use {block.get('name', '')}", pretty(block.get("input"))))
        elif block.get("type") == "tool_result":
            parts.append(("tool_result", pretty(block.get("content"))))
        elif block.get("type") == "thinking":
            # Its signature is for the API, not for people.
            parts.append(("thinking", block.get("thinking", "")))
        elif block.get("type") == "redacted_thinking":
            parts.append(("redacted_thinking", "(thinking the API keeps encrypted)"))
        else:
            parts.append((str(block.get("type", "block")), pretty(block)))
    return parts


def _items(visit: Visit) -> list[dict[str, Any]]:
    """A map's items as the inspector lists them, from the fold's ``items``: each one's
    index, status, output (its entry in ``results`` once the map is done, else what it
    streamed) or error, and tokens.

    >>> visit = Visit("each", 1, status="done", output={"results": ["A", {"n": 2}]})
    >>> visit.items = {
    ...     "1": {"status": "done", "node": "ask", "text": "...", "error": "",
    ...           "usage": {"input_tokens": 3, "output_tokens": 5}},
    ...     "0": {"status": "done", "node": "ask", "text": "A", "error": "",
    ...           "usage": {"input_tokens": 2, "output_tokens": 1}}}
    >>> [(i["index"], i["output"], i["tokens"]) for i in _items(visit)][0]
    (0, 'A', (2, 1))
    >>> _items(visit)[1]["output"] == pretty({"n": 2})
    True
    """
    results = (visit.output or {}).get("results") if visit.status == "done" else None
    rows = []
    for key, item in sorted((visit.items or {}).items(), key=lambda kv: int(kv[0])):
        index = int(key)
        if isinstance(results, list) and index < len(results):
            output = pretty(results[index])
        else:
            output = item.get("text") or ""
        usage = item.get("usage") or {}
        rows.append(
            {
                "index": index,
                "status": item.get("status", ""),
                "node": item.get("node") or "",
                "output": output[:MAX_NODE_TEXT],
                "error": item.get("error") or "",
                "tokens": (usage.get("input_tokens", 0), usage.get("output_tokens", 0)),
            }
        )
    return rows


def _provider_cache_text(run: Run) -> str:
    """The run's provider-cache figures, from its run_finished (its totals); "" before it
    finished, or when nothing was cached."""
    if not run.finished:
        return ""
    payload = (
        RunEvent.objects.filter(run=run, type="run_finished")
        .order_by("-seq")
        .values_list("payload", flat=True)
        .first()
    )
    usage = payload.get("usage") if isinstance(payload, dict) else None
    return pricing.provider_cache_text(usage, run.provider_saved_usd)


def _cost(visit: Visit) -> Decimal | None:
    """The recorded cost, else today's price of the recorded usage (runs from before costs)."""
    if visit.cost_usd is not None:
        return Decimal(str(visit.cost_usd))
    if visit.usage and visit.model:
        return pricing.cost_usd(visit.model, visit.usage)
    return None


def _total_cost(visits: list[dict[str, Any]]) -> str | None:
    costs = [v["cost"] for v in visits if v.get("cost") is not None]
    return pricing.format_usd(sum(costs, Decimal(0))) if len(costs) > 1 else None


def _visits(
    payloads: Iterable[Mapping[str, Any]],
    start_ts: float | None = None,
    links=lambda run_id: None,
) -> list[dict[str, Any]]:
    """A node's events folded (graphs.log) into one section per iteration."""
    log = fold(payloads)
    return [_section(visit, start_ts, links) for node in log.nodes() for visit in log.visits(node)]


def _section(visit: Visit, start_ts: float | None, links) -> dict[str, Any]:
    """One visit as the inspector shows it."""
    text, thinking = visit.text, visit.thinking
    section: dict[str, Any] = {
        "iteration": visit.iteration,
        "status": visit.status,
        "text": text[:MAX_NODE_TEXT],
        "truncated": len(text) > MAX_NODE_TEXT,
        # Apart from the answer, and folded away: it is often longer than the answer.
        "thinking": thinking[:MAX_NODE_TEXT],
        "thinking_truncated": len(thinking) > MAX_NODE_TEXT,
        "retries": len(visit.retries),
        "notes": [
            f"attempt {retry['attempt']} failed: {retry['error']}; "
            f"retrying in {retry['delay_s']:g} s"
            for retry in visit.retries
        ],
        "inputs": [(k, pretty(v)) for k, v in (visit.inputs or {}).items()],
        # Shown only past the first: one attempt is what every node makes.
        "attempts": visit.attempts if visit.attempts > 1 else None,
    }
    if start_ts is not None and visit.started_ts is not None:
        section["at"] = visit.started_ts - start_ts
    if visit.progress is not None:
        section["progress"] = (visit.progress["done"], visit.progress["total"])
    if visit.items is not None:
        section["map_items"] = _items(visit)
    if visit.turns:
        # An agent's recorded turns, as far as they go: shown while it waits or after it
        # failed too, which is when they say most.
        calls = (visit.detail or {}).get("tool_calls")
        durations = {
            c.get("id"): c.get("duration_ms")
            for c in (calls if isinstance(calls, list) else [])
            if isinstance(c, dict)
        }
        section["turns"] = [_turn(turn, durations) for turn in visit.turns]
    if visit.status in ("failed", "cancelled"):
        section["continued"] = visit.continued
        # "cancelled" says nothing the status does not; other reasons are worth showing.
        section["error"] = "" if visit.cancelled and visit.error == "cancelled" else visit.error
    if visit.status != "done":
        return section
    detail = dict(visit.detail or {})
    cost = _cost(visit)
    section.update(
        duration_s=visit.duration_s,
        output=_shown(visit.output or {}),
        usage=visit.usage,
        model=visit.model,
        cost=cost,
        cost_text=pricing.format_usd(cost),
        unpriced=cost is None and bool(visit.model),
        prompt=detail.pop("prompt", None),
        system=detail.pop("system", None),
        cached=_origin(visit.cached, links),
        reused=_origin(visit.reused, links),
        # The runs of the flows it called, linked where this user may see them.
        child_runs=[
            {"id": run_id, "link": links(run_id)}
            for run_id in visit.child_runs
            if isinstance(run_id, int)
        ],
    )
    messages = detail.pop("messages", None)
    if isinstance(messages, list):
        section["messages"] = [
            {"role": m.get("role", ""), "parts": _message_parts(m)}
            for m in messages
            if isinstance(m, dict)
        ]
    section["detail"] = [(k, pretty(v)) for k, v in detail.items() if v not in (None, "")]
    if section["cached"] is not None and visit.saved_usd is not None:
        section["cached"]["saved"] = pricing.format_usd(visit.saved_usd)
    # Next to the node cache's saving: what the provider's prompt cache did for this node.
    section["provider_cache"] = pricing.provider_cache_text(visit.usage, visit.provider_saved_usd)
    return section
