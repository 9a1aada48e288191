"""``/api/runs``: the run history, a run's state, its recorded events, and cancelling it.

Runs are started from their flow (``POST /api/flows/{flow_id}/runs``). A stranger gets
404 exactly like a missing id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from ninja import Field, Query, Router, Schema, Status

from graphs.errors import FlowInvalid, Problem
from graphs.nodes import approval
from webapp import execution
from webapp.api_schema import (
    MAX_INT64,
    BodyIn,
    EventOut,
    GraphDiffOut,
    Id,
    PageQuery,
    UsageOut,
    next_url,
    page_model,
    paginate,
)
from webapp.auth_api import api_auth
from webapp.flows.api import InvalidOut, invalid
from webapp.problems import ProblemError, responses
from webapp.runs import approvals, budget_raise, budgets, eventlog, follow, services
from webapp.runs.access import run_for_editor, run_for_viewer
from webapp.runs.compare import CompareRefused, compare_runs, runs_to_compare
from webapp.runs.history_views import filtered_runs, run_seconds
from webapp.runs.models import Run

router = Router(auth=api_auth, tags=["runs"])

MAX_EVENTS = 5000


class BudgetOut(Schema):
    budget_usd: float = Field(description="The run's cost budget, US dollars.")
    spent_usd: float = Field(description="What its model calls cost so far.")
    paused: bool = Field(
        description="A model call would have exceeded the budget: the run waits until it is raised."
    )
    paused_nodes: list[str] = Field(description="The nodes that paused for the budget.")


class RunOut(Schema):
    id: int
    flow: int
    flow_version: int
    status: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    error: str
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    usage: UsageOut
    # Set when the run finishes (webapp.runs.eventlog); null while it is queued or running.
    cost_usd: float | None
    saved_usd: float | None
    cache_hits: int | None
    duration_s: float | None
    kind: str = Field(description="run, rerun, from_node, resume or subflow")
    trigger: str = Field(
        description="What started it: editor, api, webhook, schedule, chat, mcp or rerun; "
        "empty for runs from before this was recorded."
    )
    parent: int | None = Field(
        description="The run this one was started from; for a subflow run, the run whose "
        "node called its flow."
    )
    from_node: str = Field(description="Where a from_node re-run began; empty otherwise.")
    parent_node: str = Field(
        description="For a subflow run, the parent's node that called it; empty otherwise."
    )
    budget: BudgetOut | None = Field(
        None, description="The run's cost budget and what its model calls spent; null: none."
    )


class BudgetIn(BodyIn):
    budget_usd: float = Field(
        gt=0, le=1_000_000, description="The run's new cost budget in US dollars."
    )


class BudgetRaisedOut(BudgetOut):
    status: str
    resumed: bool = Field(description="The run was paused for its budget and now goes on.")


def budget_of(run: Run) -> dict[str, Any] | None:
    if run.budget_usd is None:
        return None
    nodes = budget_raise.paused_nodes(run)
    return {
        "budget_usd": float(run.budget_usd),
        "spent_usd": float(run.spent_usd),
        "paused": bool(nodes),
        "paused_nodes": nodes,
    }


class RunSummaryOut(Schema):
    id: int
    flow: int
    flow_name: str
    flow_version: int
    status: str
    started_by: str | None
    created: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    usage: UsageOut
    cost_usd: float | None
    saved_usd: float | None
    cache_hits: int | None
    duration_s: float | None
    kind: str
    trigger: str
    parent: int | None
    from_node: str
    parent_node: str


RunPageOut = page_model("RunPageOut", RunSummaryOut)
EventPageOut = page_model(
    "EventPageOut", EventOut, "A page of a run's events, in seq order; next reads on."
)


class RunListQuery(PageQuery):
    status: Run.Status | None = None
    flow: Id | None = Field(None, description="Only this flow's runs.")


class EventsQuery(Schema):
    after: int = Field(0, ge=0, le=MAX_INT64, description="Only events with a larger seq.")
    limit: int = Field(MAX_EVENTS, ge=1, le=MAX_EVENTS)


class StatusOut(Schema):
    status: str


def run_figures(run: Run) -> dict[str, Any]:
    """What a run cost and how it came to be, as the history and the detail show them."""
    done = run.finished
    return {
        "cost_usd": float(run.cost_usd) if done else None,
        "saved_usd": float(run.saved_usd) if done else None,
        "cache_hits": run.cache_hits if done else None,
        "duration_s": run_seconds(run),
        "kind": run.kind,
        "trigger": run.trigger,
        "parent": run.parent_id,
        "from_node": run.from_node,
        "parent_node": run.parent_node,
    }


@router.get("", response=RunPageOut)
def run_list(request: HttpRequest, query: Query[RunListQuery]) -> Any:
    """The runs the caller may see, newest first.

    Filters: ``status`` (queued, running, waiting, succeeded, failed, cancelled) and ``flow`` (a
    flow's id; one the caller cannot see matches nothing). Offsets count from the newest
    run at the time of the request, so runs started while paging shift later pages by
    as many rows.
    """
    runs = filtered_runs(request.auth, status=query.status or "", flow=query.flow)
    return paginate(request, runs, query, run_summary)


def run_summary(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "flow": run.flow_id,
        "flow_name": run.flow.name,
        "flow_version": run.version_number,
        "status": run.status,
        "started_by": run.started_by.username if run.started_by_id else None,
        "created": run.created,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "usage": run.usage,
        **run_figures(run),
    }


class CompareQuery(Schema):
    a: Id = Field(description="The first run (the diff goes from a to b).")
    b: Id = Field(description="The second run, of the same flow.")


class CompareRunOut(Schema):
    id: int
    status: str
    kind: str
    parent: int | None
    flow_version: int
    edited_graph: bool = Field(description="It ran an edited copy of its version's graph.")
    started_by: str | None
    created: dt.datetime
    duration_s: float | None
    usage: UsageOut
    cost_usd: float | None
    saved_usd: float | None
    cache_hits: int
    error: str


class CompareInputOut(Schema):
    name: str
    equal: bool
    a: Any = Field(None, description="Absent when run a had no such input.")
    b: Any = Field(None, description="Absent when run b had no such input.")


class NodeOutcomeOut(Schema):
    in_graph: bool
    status: str = Field(description="done, failed, cancelled, skipped, not run or absent.")
    output: dict[str, Any] | None = Field(description="Port -> value; null without one.")
    error: str
    iterations: int
    duration_s: float | None
    usage: UsageOut
    model: str | None
    cost_usd: float | None
    cached: bool
    saved_usd: float | None
    reused: bool
    reused_from: str | None


class CompareNodeOut(Schema):
    id: str
    label: str
    type: str
    change: str = Field(description="added, removed, changed, or empty when the same.")
    same_output: bool
    a: NodeOutcomeOut
    b: NodeOutcomeOut
    output_diff: list[tuple[str, str]] | None = Field(
        description="[op, text] pieces from a's output text to b's (op: equal, insert, delete)."
    )
    output_diff_truncated: bool


class CompareOut(Schema):
    a: CompareRunOut
    b: CompareRunOut
    flow: int
    same_graph: bool
    graph_diff: GraphDiffOut | None = Field(description="Null when both ran the same graph.")
    same_inputs: bool
    inputs: list[CompareInputOut]
    nodes: list[CompareNodeOut]


# exclude_unset: an input only one run had is absent on the other side, not null.
@router.get("/compare", response={200: CompareOut, **responses(400, 404)}, exclude_unset=True)
def run_compare(request: HttpRequest, query: Query[CompareQuery]) -> Any:
    """Two runs of one flow side by side: totals, inputs, each node's outcome and output.

    ``nodes[].output_diff`` turns a's output text into b's as ``[op, text]`` pieces (op:
    equal, insert, delete); null when the outputs are equal or a side has none.
    ``graph_diff`` is null when both runs ran the same graph. 400 for runs of different
    flows; 404 for a run the caller cannot see.
    """
    try:
        a, b = runs_to_compare(request.auth, query.a, query.b)
    except CompareRefused as refused:
        raise ProblemError(400, "different_flows", str(refused)) from None
    return compare_runs(a, b).as_dict()


@router.get("/{run_id}", response={200: RunOut, **responses(404)})
def run_detail(request: HttpRequest, run_id: Id) -> Any:
    """A run: its state, inputs and outputs, usage and cost, and where it came from."""
    run = run_for_viewer(request.auth, run_id)
    return {
        "id": run.id,
        "flow": run.flow_id,
        "flow_version": run.flow_version.number,
        "status": run.status,
        "inputs": run.inputs,
        "outputs": run.outputs,
        "error": run.error,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "usage": run.usage,
        **run_figures(run),
        "budget": budget_of(run),
    }


@router.get("/{run_id}/events", response={200: EventPageOut, **responses(404)})
def run_events(request: HttpRequest, run_id: Id, query: Query[EventsQuery]) -> Any:
    """The run's recorded events with a seq above ``after``, in order.

    ``next`` (null on the last page) reads on from the last event of this page. The log
    of a live run grows: read it again from the last seq you have.
    """
    run = run_for_viewer(request.auth, run_id)
    events = eventlog.page(run.pk, query.after, query.limit)
    after = next_url(request, after=events.last, limit=query.limit) if events.more else None
    page = {"count": events.count, "next": after}
    # The stored events are written out as they are (EventOut is any object): the page's
    # other fields are encoded as usual around them.
    tail = json.dumps(page)[1:]
    body = '{"items": [' + ", ".join(events.texts) + "], " + tail
    return HttpResponse(body, content_type="application/json")


class StreamQuery(Schema):
    after: int = Field(
        0, ge=0, le=MAX_INT64, description="Only events with a larger seq (Last-Event-ID wins)."
    )


# What an event stream's 200 is: one message an event (see run_stream), each with these
# fields as text.
STREAM_200 = {
    "description": "OK",
    "content": {
        "text/event-stream": {
            "schema": {
                "type": "object",
                "description": "One Server-Sent Events message: one event of the run.",
                "properties": {
                    "id": {"type": "string", "description": "The event's seq."},
                    "event": {"type": "string", "description": "The event's type."},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "description": "The event as JSON (as in /events).",
                    },
                },
                "required": ["id", "event", "data"],
            }
        }
    },
}
# A comment line now and then keeps proxies from closing a quiet stream.
KEEPALIVE_S = 15.0


@router.get(
    "/{run_id}/stream",
    response={200: None, **responses(400, 404)},
    openapi_extra={"responses": {200: STREAM_200}},
)
async def run_stream(request: HttpRequest, run_id: Id, query: Query[StreamQuery]) -> Any:
    """The run's events as Server-Sent Events: what is recorded first, then each as it is
    recorded, ending after ``run_finished``.

    Each message is ``id:`` the event's seq, ``event:`` its type, ``data:`` the event as
    JSON, the same events as ``/events`` and the run socket. To resume, send
    ``Last-Event-ID`` (an EventSource does by itself) or ``?after=``. A stream open longer
    than the deployment's ``SWITCHYARD_RUN_STREAM_MAX_S`` ends without ``run_finished``:
    reconnect to read on.
    """
    await sync_to_async(run_for_viewer)(request.auth, run_id)
    after = _last_event_id(request.headers.get("Last-Event-ID"), query.after)
    response = StreamingHttpResponse(_sse(run_id, after), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _last_event_id(header: str | None, after: int) -> int:
    if header is None or not header.strip():
        return after
    value = header.strip()
    if not value.isascii() or not value.isdigit() or int(value) > MAX_INT64:
        raise ProblemError(
            400, "bad_last_event_id", "Last-Event-ID must be the seq of an event: a whole number"
        )
    return int(value)


async def _sse(run_id: int, after: int) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    opened = quiet_since = loop.time()
    async for chunk in follow.events(run_id, after):
        now = loop.time()
        if chunk:
            yield "".join(
                f"id: {e['seq']}\nevent: {e['type']}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n"
                for e in chunk
            )
            quiet_since = now
        elif now - quiet_since >= KEEPALIVE_S:
            yield ": keep-alive\n\n"
            quiet_since = now
        if now - opened >= settings.RUN_STREAM_MAX_S:
            return


@router.post("/{run_id}/cancel", response={202: StatusOut, **responses(403)})
def run_cancel(request: HttpRequest, run_id: Id) -> Any:
    """Cancel a queued or running run (editors); the answer says its status now."""
    run = run_for_editor(request.auth, run_id)
    execution.cancel(run.id)
    status = Run.objects.values_list("status", flat=True).get(pk=run.id)
    return Status(202, {"status": status})


class ApprovalIn(BodyIn):
    action: str = Field(description="One of the approval's actions (e.g. approve, reject).")
    values: dict[str, Any] = Field(
        default_factory=dict, description="The form's field values: {field: value}."
    )
    call: str | None = Field(
        None,
        max_length=200,
        description="For an agent's tool call waiting for approval (kind tool_approval): "
        "its tool_use_id, as the pending approval shows it; refused (409) when the agent "
        "no longer waits on that call.",
    )


@router.post(
    "/{run_id}/approvals/{node}",
    response={202: StatusOut, **responses(400, 403, 409)},
)
def run_approve(request: HttpRequest, run_id: Id, node: str, body: ApprovalIn) -> Any:
    """Answer an approval the run waits on: the run goes on from the action's port; for an
    agent's tool call (approve or reject, with an optional reason), the agent runs the tool
    or tells the model it was rejected. Who may answer: the users and teams (``team:<id>``)
    the approval's ``approvers`` name, else the editors of its flow; others who can see the
    run get 403. 400 names the field at fault; 409 when the node does not wait (answered
    already, timed out, or never asked)."""
    try:
        approvals.answer(request.auth, run_id, node, body.action, body.values, body.call)
    except approval.AnswerInvalid as exc:
        path = f"body.values.{exc.field}" if exc.field else "body.action"
        raise ProblemError(
            400, "answer_invalid", str(exc), errors=[{"path": path, "message": str(exc)}]
        ) from None
    except approvals.NotWaiting as exc:
        raise ProblemError(409, "not_waiting", str(exc)) from None
    status = Run.objects.values_list("status", flat=True).get(pk=run_id)
    return Status(202, {"status": status})


@router.post(
    "/{run_id}/budget",
    response={200: BudgetRaisedOut, **responses(400, 403, 409)},
)
def run_budget(request: HttpRequest, run_id: Id, body: BudgetIn) -> Any:
    """Set the run's cost budget (editors of its flow). A run paused because a model call
    would have exceeded its budget goes on (``resumed``): the paused calls are made again,
    nothing that finished is. 409 when the run has ended or was started without a
    budget (its calls reserve nothing)."""
    try:
        resumed = budget_raise.raise_budget(request.auth, run_id, body.budget_usd)
    except budgets.BudgetInvalid as exc:
        raise ProblemError(
            400,
            "budget_invalid",
            str(exc),
            errors=[{"path": "body.budget_usd", "message": str(exc)}],
        ) from None
    except budget_raise.NoBudget as exc:
        raise ProblemError(409, "no_budget", str(exc)) from None
    except budget_raise.RunFinished as exc:
        raise ProblemError(409, "run_finished", str(exc)) from None
    run = Run.objects.get(pk=run_id)
    return {**(budget_of(run) or {}), "status": run.status, "resumed": resumed}


# Re-run, re-run from a node, resume: each starts a new run linked to this one.


class RerunIn(BodyIn):
    inputs: dict[str, Any] | None = Field(None, description="The run's own inputs when omitted.")
    version: Literal["run", "current"] = Field(
        "run", description="run: the graph this run ran; current: the flow's current version."
    )
    ignore_cache: bool = False


class RerunFromIn(BodyIn):
    node: str = Field(description="The node to start from; nodes upstream keep their outputs.")
    config: dict[str, Any] | None = Field(None, description="A new config for that node.")
    inputs: dict[str, Any] | None = Field(
        None, description="Values replacing what arrives on the node's input ports: {port: value}."
    )
    ignore_cache: bool = False


class RunStartedOut(Schema):
    id: int
    kind: str
    parent: int
    url: str = Field(description="The run's page.")
    api_url: str
    events_url: str
    status: str = Field(description="queued: a worker or the server's loop starts it.")
    notice: str | None = Field(
        None, description="Set when the run cannot start yet, and says why (queue unreachable)."
    )


def started(run: Run) -> Status:
    return Status(
        201,
        {
            "id": run.id,
            "kind": run.kind,
            "parent": run.parent_id,
            "status": run.status,
            "notice": services.start_notice(run),
            "url": f"/runs/{run.id}/",
            "api_url": f"/api/runs/{run.id}",
            "events_url": f"/api/runs/{run.id}/events",
        },
    )


def refused(exc: ValueError) -> ProblemError:
    if isinstance(exc, FlowInvalid):
        return invalid(exc, "the run cannot start")
    return invalid(FlowInvalid([Problem(str(exc))]), "the run cannot start")


STARTS = {201: RunStartedOut, 400: InvalidOut, **responses(403, 404)}


@router.post("/{run_id}/rerun", response=STARTS)
def run_rerun(request: HttpRequest, run_id: Id, payload: RerunIn | None = None) -> Any:
    """Run again with the same inputs (or ``inputs``), on this run's graph or the current one."""
    payload = payload or RerunIn()
    run = run_for_editor(request.auth, run_id)
    try:
        new = services.create_rerun(
            run,
            request.auth,
            inputs=payload.inputs,
            on_current=payload.version == "current",
            ignore_cache=payload.ignore_cache,
        )
    except ValueError as exc:
        raise refused(exc) from None
    return started(new)


@router.post("/{run_id}/rerun-from", response=STARTS)
def run_rerun_from(request: HttpRequest, run_id: Id, payload: RerunFromIn) -> Any:
    """Keep the outputs recorded upstream of ``node``; run it (maybe edited) and what follows."""
    run = run_for_editor(request.auth, run_id)
    try:
        new = services.create_from_node(
            run,
            request.auth,
            payload.node,
            config=payload.config,
            port_values=payload.inputs,
            ignore_cache=payload.ignore_cache,
        )
    except ValueError as exc:
        raise refused(exc) from None
    return started(new)


@router.post("/{run_id}/resume", response={**STARTS, **responses(409)})
def run_resume(request: HttpRequest, run_id: Id) -> Any:
    """Continue a failed or cancelled run: what finished is kept, the rest runs (409 otherwise)."""
    run = run_for_editor(request.auth, run_id)
    try:
        new = services.create_resume(run, request.auth)
    except services.NotResumable as exc:
        raise ProblemError(409, "not_resumable", str(exc)) from None
    except ValueError as exc:
        raise refused(exc) from None
    return started(new)
