"""``/api/flows``: create, read, list and save flows, and start runs of them.

A stranger gets 404 exactly like a missing id. Saves never overwrite: each names the
version it was based on and is refused with 409 when someone saved since.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Annotated, Any, Literal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema, Status
from pydantic import StringConstraints, WithJsonSchema

from graphs.errors import FlowInvalid
from webapp.accounts.tokens import bearer
from webapp.api_schema import (
    FLOW_DOCUMENT_SCHEMA,
    BodyIn,
    FlowDocumentOut,
    Id,
    PageQuery,
    UsageOut,
    VersionNumber,
    page_model,
    paginate,
)
from webapp.auth_api import api_auth
from webapp.execution.plans import VersionCannotRun
from webapp.flows import access, services
from webapp.flows.models import Flow, FlowVersion
from webapp.flows.versions import service as versions
from webapp.problems import ProblemError, ProblemOut, responses
from webapp.runs import answers, budgets, follow, idempotency, uploads
from webapp.runs import estimate as run_estimates
from webapp.runs import files as run_files
from webapp.runs.files import FileRefused
from webapp.runs.models import Run
from webapp.runs.services import create_run, version_for_outside
from webapp.teams.models import Role
from webapp.teams.services import team_for

router = Router(auth=api_auth, tags=["flows"])

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Message = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


GraphIn = Annotated[Any, WithJsonSchema(FLOW_DOCUMENT_SCHEMA)]


class FlowIn(BodyIn):
    name: Name
    graph: GraphIn
    team: Id | None = Field(
        None, description="Create it in this team (you edit or own it); else in your space."
    )


class FlowSaveIn(BodyIn):
    graph: GraphIn
    base_version: int | None = Field(
        None, ge=1, le=2**63 - 1, description="The version the editor loaded (required)."
    )
    name: Name | None = None
    message: Message = Field("", description="Optional: what this version changes.")


class FileIn(BodyIn):
    name: str = Field(
        "",
        max_length=255,
        description="The file's name, for people: kept as letters, digits, '.', '_' and '-'.",
    )
    data: str = Field(description="The file's bytes, base64.")


FILES_HELP = (
    "File inputs, by input name: PNG, JPEG, GIF, WebP, PDF or UTF-8 text, told by their "
    "bytes, each at most SWITCHYARD_RUN_FILE_MAX_BYTES (all of a run's "
    "SWITCHYARD_RUN_FILES_MAX_BYTES), base64 here and so within the body's cap "
    "(SWITCHYARD_API_MAX_BODY_BYTES): larger files go as parts of a multipart/form-data "
    "body. The input's value becomes a reference {file, name, media_type, size, sha256}; a "
    "prompt variable holding it sends the file to the model as an image or document. "
    "400 file_refused names the input at fault."
)


def multipart_body(json_form: str) -> dict[str, Any]:
    """The OpenAPI request body of an operation that also takes files as parts
    (webapp.runs.uploads), beside its JSON form."""
    return {
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "body": {
                                "type": "string",
                                "description": f"The {json_form} object of the JSON form, as "
                                "JSON text (without files). Absent: {}.",
                            }
                        },
                        "additionalProperties": {
                            "type": "string",
                            "format": "binary",
                            "description": "A file input's file: the part named by the "
                            "input, its filename kept for people.",
                        },
                    }
                }
            }
        }
    }


class RunIn(BodyIn):
    inputs: dict[str, Any] = Field({}, description="The flow's inputs, by input name.")
    files: dict[str, FileIn] = Field({}, description=FILES_HELP)
    ignore_cache: bool = Field(
        False, description="Run every node, even those with a cached output (and refresh it)."
    )
    version: VersionNumber | Literal["current"] | None = Field(
        None,
        description='The version to run, or "current" for the newest; default: the '
        "published version, else the newest.",
    )
    budget_usd: float | None = Field(
        None,
        gt=0,
        le=1_000_000,
        description="A cost budget for this run in US dollars, in place of the flow's: a "
        "model call that would exceed it does not start, the run pauses (run_paused) until "
        "the budget is raised (POST /api/runs/{id}/budget).",
    )
    latency: Literal["stream", "batch"] = Field(
        "stream",
        description='"batch": the run\'s model calls go to the Message Batches API at half '
        "the price instead of streaming; the run waits (status waiting) for each batch, "
        "usually minutes, at most 24 hours. A call whose batch item fails is streamed.",
    )
    wait: float | None = Field(
        None,
        ge=0,
        le=300,
        description="Seconds to wait for the run to end: 200 with its outputs when it does, "
        "else 202. Absent: answer at once (201).",
    )


class FlowProblemOut(Schema):
    message: str
    node: str | None = Field(description="The node at fault, if one is.")
    edge: list[Any] | None = Field(description="The edge at fault: [source, target, key].")
    text: str = Field(description="The whole explanation, naming the node or edge.")


PROBLEMS_HELP = (
    "Why this version cannot run yet (unfinished work is saved all the same): each at its "
    "node or edge. A run or a publication of a version with problems is refused (400 "
    "``invalid_flow``, naming them); [] when it can run."
)
WARNINGS_HELP = (
    "What may not do what you meant though the flow can run (say, a loop that several "
    "nodes enter from outside): each at its node or edge. Warnings never stop a save or a run."
)


class FlowCreatedOut(Schema):
    id: int
    version: int
    problems: list[FlowProblemOut] = Field([], description=PROBLEMS_HELP)
    warnings: list[FlowProblemOut] = Field([], description=WARNINGS_HELP)


class FlowOut(Schema):
    id: int
    name: str
    version: int
    published_version: int | None = Field(
        description="What runs from outside the editor run; null: the newest version."
    )
    graph: FlowDocumentOut
    problems: list[FlowProblemOut] = Field([], description=PROBLEMS_HELP)


class FlowSummaryOut(Schema):
    id: int
    name: str
    version: int
    updated: dt.datetime


class SavedOut(Schema):
    version: int
    problems: list[FlowProblemOut] = Field([], description=PROBLEMS_HELP)
    warnings: list[FlowProblemOut] = Field([], description=WARNINGS_HELP)


class RunCreatedOut(Schema):
    id: int
    status: str = "queued"
    version: int = Field(description="The version of the flow the run runs.")
    # Set when the run cannot start yet, and says why (the task queue is unreachable).
    notice: str | None = None


class RunWaitedOut(RunCreatedOut):
    """The run ended while the request waited."""

    outputs: dict[str, Any]
    error: str
    usage: UsageOut
    cost_usd: float
    duration_s: float | None


FlowPageOut = page_model("FlowPageOut", FlowSummaryOut)


class InvalidOut(ProblemOut):
    """The engine refused the flow (code ``invalid_flow``): ``problems`` says where."""

    problems: list[FlowProblemOut] | None = Field(
        None, description="What the engine found wrong, each at its node or edge."
    )


class StaleOut(ProblemOut):
    """Someone saved since (code ``stale_version``): reload ``current_version``."""

    current_version: int


problem_json = services.problem_json  # FlowProblemOut, as stored on a version


def invalid(exc: FlowInvalid, detail: str = "invalid flow") -> ProblemError:
    if isinstance(exc, VersionCannotRun):
        detail = str(exc)  # names the version and its problems
    problems = [problem_json(p) for p in exc.problems]
    return ProblemError(400, "invalid_flow", detail, problems=problems)


def warnings_json(document: Any) -> list[dict[str, Any]]:
    return [problem_json(w) for w in services.warnings(document)]


def stale(detail: str, current: int) -> ProblemError:
    return ProblemError(409, "stale_version", detail, current_version=current)


def stale_base(base_version: int, exc: services.StaleVersion) -> ProblemError:
    """A restore or import built on `base_version` after someone saved `exc.current`."""
    return stale(
        f"version {base_version} is stale: the flow is now at version "
        f"{exc.current}; nothing was stored",
        exc.current,
    )


@router.get("", response=FlowPageOut)
def flow_list(request: HttpRequest, page: Query[PageQuery]) -> Any:
    """The flows you can see (yours, your teams', shared with you), newest change first."""
    flows = access.visible_flows(request.auth).only("id", "name", "version", "updated")
    return paginate(request, flows.order_by("-updated", "-id"), page)


@router.post("", response={201: FlowCreatedOut, 400: InvalidOut, **responses(403, 404)})
def flow_create(request: HttpRequest, payload: FlowIn) -> Any:
    """Create a flow from a document (version 1), checked by the engine first."""
    team = None
    if payload.team is not None:
        team = team_for(request.auth, payload.team, Role.EDITOR).team
    try:
        flow = services.create(request.auth, payload.name, payload.graph, team=team)
    except FlowInvalid as exc:
        raise invalid(exc) from None
    warnings = warnings_json(payload.graph)
    problems = flow.current().problems
    return Status(
        201, {"id": flow.id, "version": flow.version, "problems": problems, "warnings": warnings}
    )


@router.get("/{flow_id}", response={200: FlowOut, **responses(404)})
def flow_detail(request: HttpRequest, flow_id: Id) -> Any:
    """The flow's current version: its number and document."""
    flow = access.flow_for_viewer(request.auth, flow_id)
    version = flow.current()
    published = flow.published.number if flow.published else None
    return {
        "id": flow.id,
        "name": flow.name,
        "version": version.number,
        "published_version": published,
        "graph": version.graph,
        "problems": version.problems,
    }


@router.put(
    "/{flow_id}",
    response={200: SavedOut, 400: InvalidOut, **responses(403, 404), 409: StaleOut},
)
def flow_save(request: HttpRequest, flow_id: Id, payload: FlowSaveIn) -> Any:
    """Save a new version, built on ``base_version`` (409 when someone saved since).

    Unfinished work is saved: the answer's ``problems`` say why the version cannot run
    yet (a run or publication of it is refused until they are fixed), its ``warnings``
    what may not do what you meant.

    400 (``invalid_flow``, nothing stored) when the document is not well-formed: its shape,
    a size cap, an identifier outside its characters, an unknown node type, a config value
    of the wrong type; 400 ``base_version_required`` when the version the editor loaded is
    missing.
    """
    flow = access.flow_for_editor(request.auth, flow_id)
    if payload.base_version is None:
        # Without it we cannot tell whether someone saved in between, and guessing
        # "latest" would silently overwrite their work.
        raise ProblemError(
            400,
            "base_version_required",
            "base_version is required: send the version this graph was based on "
            f"(the current version is {flow.version})",
        )
    try:
        number = services.save(
            flow,
            request.auth,
            payload.graph,
            payload.base_version,
            name=payload.name,
            message=payload.message,
        )
    except FlowInvalid as exc:
        raise invalid(exc) from None
    except services.StaleVersion as exc:
        raise stale(
            f"version {payload.base_version} is stale: the flow is now at "
            f"version {exc.current}; reload it and save again",
            exc.current,
        ) from None
    problems = flow.versions.values_list("problems", flat=True).get(number=number)
    return {"version": number, "problems": problems, "warnings": warnings_json(payload.graph)}


RUN_STARTS = {
    200: RunWaitedOut,
    201: RunCreatedOut,
    202: RunCreatedOut,
    400: InvalidOut,
    **responses(403, 404, 409, 429),
}


@router.post("/{flow_id}/runs", response=RUN_STARTS, openapi_extra=multipart_body("RunIn"))
async def run_create(
    request: HttpRequest, response: HttpResponse, flow_id: Id, payload: RunIn
) -> Any:
    """Start a run (editors): of the published version, else the newest, unless ``version``
    names one. It begins queued: 201 with its id.

    Files: base64 in the JSON body's ``files``, or as ``multipart/form-data``: the JSON
    body as the text field ``body``, and one file part per file input, named by the input
    (``curl -F 'body={"inputs": {"q": "why?"}}' -F report=@report.pdf``). Each file at
    most ``SWITCHYARD_RUN_FILE_MAX_BYTES``, all of them ``SWITCHYARD_RUN_FILES_MAX_BYTES``:
    413 ``file_too_large`` naming the input, the rest of the body unread; a body longer
    than the JSON cap plus the files' is a 413 ``body_too_large`` before any of it is read.

    With ``wait`` (seconds) the answer waits for the run: 200 with its status and outputs
    when it ends within that time, else 202 as without. A client that goes away while
    waiting does not stop the run.

    ``Idempotency-Key`` (1-255 visible ASCII characters): the same key with the same body
    within 24 hours answers with the first run (header ``Idempotent-Replayed: true``) and
    starts nothing; with another body, 409 ``idempotency_key_reused``.

    400 (``invalid_flow``) when the version has problems (saved unfinished: the answer's
    ``problems`` name them) or the inputs do not fit the flow; 400 (``file_refused``) when
    a file is of a type a run does not take (or, base64, over its cap), naming its input.
    """
    # The answer is made in the same trip to the sync thread as the run: a second hop per
    # POST queued again behind the burst's other requests.
    run, replayed, answer = await sync_to_async(_start_and_answer)(request, flow_id, payload)
    if replayed:
        response["Idempotent-Replayed"] = "true"
    if payload.wait is None:
        return Status(201, answer)
    if await follow.until_finished(run.pk, min(payload.wait, settings.RUN_WAIT_MAX_S)):
        return Status(200, await sync_to_async(answers.ended)(run.pk))
    return Status(202, await sync_to_async(answers.started)(run))


class EstimateIn(BodyIn):
    inputs: dict[str, Any] = Field({}, description="The flow's inputs, by input name.")
    files: dict[str, FileIn] = Field(
        {},
        description="File inputs, as for a run (or as parts of a multipart body): checked "
        "and counted with the prompts they are in, never stored.",
    )
    version: VersionNumber | Literal["current"] | None = Field(
        None, description='As for a run: a version, "current", or the published one.'
    )
    budget_usd: float | None = Field(
        None, gt=0, le=1_000_000, description="The run's budget, to compare; else the flow's."
    )


class NodeCostOut(Schema):
    node: str
    usd: float = Field(description="What the node may cost, US dollars.")
    source: str = Field(
        description="count_tokens (its prompt counted by the API, plus max_tokens), "
        "past_runs (its mean in the flow's recent runs) or offline (the offline model)."
    )
    input_tokens: int | None = None
    max_tokens: int | None = None
    items: int | None = Field(None, description="A map's items, its cost multiplied by them.")


class EstimateOut(Schema):
    estimate_usd: float
    nodes: list[NodeCostOut]
    budget_usd: float | None = Field(description="The budget the run would have.")
    over_budget: bool = Field(description="The estimate is above that budget.")


@router.post(
    "/{flow_id}/estimate",
    response={200: EstimateOut, 400: InvalidOut, **responses(403, 404)},
    openapi_extra=multipart_body("EstimateIn"),
)
async def run_estimate(request: HttpRequest, flow_id: Id, payload: EstimateIn) -> Any:
    """What a run with these inputs may cost (editors, as for starting one), before it
    starts: the first model nodes' prompts (with the files they hold, sent as for a run)
    counted by the API's token counting and priced with their max_tokens as the reply's
    upper bound; other nodes at their mean in the flow's recent runs; a map's calls times
    its items. 0 on the offline model."""
    flow, version = await sync_to_async(_version_to_run)(request, flow_id, payload.version)
    try:
        held = await sync_to_async(_checked_files)(request, payload.files)
        found = await run_estimates.estimate(flow, version, request.auth, payload.inputs, held)
    except FileRefused as exc:
        raise ProblemError(400, "file_refused", str(exc)) from None
    except FlowInvalid as exc:
        raise invalid(exc, "the run cannot start") from None
    budget = payload.budget_usd if payload.budget_usd is not None else flow.budget_usd
    return {
        **found.as_json(),
        "budget_usd": None if budget is None else float(budget),
        "over_budget": budget is not None and found.usd > Decimal(str(budget)),
    }


def _sent_files(request: HttpRequest) -> dict[str, run_files.Sent]:
    return uploads.sent_files(request) if uploads.is_upload(request) else {}


def _checked_files(request: HttpRequest, files: dict[str, FileIn]) -> list[run_files.Upload]:
    sent = _sent_files(request)
    if not files and not sent:
        return []
    return run_files.check({name: f.model_dump() for name, f in files.items()}, sent)


def _version_to_run(
    request: HttpRequest, flow_id: int, asked: int | str | None
) -> tuple[Flow, FlowVersion]:
    flow = access.flow_for_editor(request.auth, flow_id)
    if asked == "current":
        return flow, flow.current()
    if asked is not None:
        return flow, versions.get(flow, int(asked))
    return flow, version_for_outside(flow)


class FlowBudgetIn(BodyIn):
    budget_usd: float | None = Field(
        gt=0,
        le=1_000_000,
        description="The cost budget of each run of the flow in US dollars (a run may name "
        "its own); null: none.",
    )


class FlowBudgetOut(Schema):
    budget_usd: float | None


@router.put("/{flow_id}/budget", response={200: FlowBudgetOut, **responses(400, 403, 404)})
def flow_budget(request: HttpRequest, flow_id: Id, payload: FlowBudgetIn) -> Any:
    """Set the flow's cost budget for its runs (editors); null removes it."""
    flow = access.flow_for_editor(request.auth, flow_id)
    flow.budget_usd = budgets.checked_budget(payload.budget_usd)
    flow.save(update_fields=["budget_usd"])
    return {"budget_usd": None if flow.budget_usd is None else float(flow.budget_usd)}


def _start_and_answer(
    request: HttpRequest, flow_id: int, payload: RunIn
) -> tuple[Run, bool, dict[str, Any]]:
    run, replayed = _start(request, flow_id, payload)
    return run, replayed, answers.started(run)


def _start(request: HttpRequest, flow_id: int, payload: RunIn) -> tuple[Run, bool]:
    flow = access.flow_for_editor(request.auth, flow_id)
    if payload.version == "current":
        version = flow.current()
    elif payload.version is not None:
        version = versions.get(flow, payload.version)
    else:
        version = version_for_outside(flow)
    # A browser's session is the editor; a token is a program calling the API.
    from_api = bearer(request.headers.get("Authorization")) is not None
    trigger = Run.Trigger.API if from_api else Run.Trigger.EDITOR

    sent = _sent_files(request)

    def start() -> Run:
        try:
            return create_run(
                flow,
                request.auth,
                payload.inputs,
                version=version,
                trigger=trigger,
                ignore_cache=payload.ignore_cache,
                budget_usd=payload.budget_usd,
                files={name: one.model_dump() for name, one in payload.files.items()},
                sent_files=sent,
                latency=payload.latency,
            )
        except FlowInvalid as exc:
            raise invalid(exc, "the run cannot start") from None
        except FileRefused as exc:
            raise ProblemError(400, "file_refused", str(exc)) from None

    key = request.headers.get("Idempotency-Key")
    if key is None:
        return start(), False
    if not idempotency.valid_key(key):
        raise ProblemError(
            400,
            "bad_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters (! to ~)",
        )
    # Files sent as parts count by their content, as the JSON form's do by theirs.
    parts = [
        f"{name}:{one.name}:{hashlib.sha256(one.data).hexdigest()}" for name, one in sent.items()
    ]
    asked = idempotency.digest(
        str(flow.pk).encode(),
        payload.model_dump_json().encode(),
        *(p.encode() for p in sorted(parts)),
    )
    try:
        return idempotency.start_once(request.auth, key, asked, start)
    except idempotency.KeyReused as exc:
        raise ProblemError(409, "idempotency_key_reused", str(exc)) from None
