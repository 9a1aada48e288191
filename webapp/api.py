"""The JSON API (django-ninja): OpenAPI schema at /api/openapi.json, docs at /api/docs.

One router per module; each module checks permissions through the access functions.

The contract every operation keeps, whatever its router says:

- Errors are problem details (``webapp.problems``): every 4xx and 5xx, raised anywhere
  (ninja's own validation and auth failures included), is rendered here.
- A JSON body is an object sent as ``application/json``: anything else is refused (415,
  400) before an operation sees it, and so are strings with NUL characters or lone
  surrogates and non-finite numbers, which PostgreSQL cannot store (422).
- The schema documents every status an operation can answer: the routers declare their
  own (``problems.responses``), and ``SwitchyardAPI.get_openapi_schema`` adds those the
  machinery here answers for every operation of a kind (401, 422, 429, ...).
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from django.core import signals
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.datastructures import MultiValueDict
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError
from ninja.openapi.docs import Swagger
from ninja.openapi.schema import OpenAPISchema
from ninja.parser import Parser

from webapp import problems
from webapp.accounts import throttle
from webapp.api_schema import string_problem, unstorable
from webapp.chat.api import router as chat_router
from webapp.credentials.api import router as credentials_router
from webapp.flows.api import router as flows_router
from webapp.flows.editor.api import router as editor_router
from webapp.flows.sharing.api import router as sharing_router
from webapp.flows.sharing.pending_api import router as pending_shares_router
from webapp.flows.transfer.api import router as transfer_router
from webapp.flows.versions.api import router as versions_router
from webapp.flows.webhooks.api import router as webhooks_router
from webapp.mcpservers.api import router as mcp_servers_router
from webapp.problems import ProblemError, ProblemOut
from webapp.runs import uploads
from webapp.runs.api import router as runs_router
from webapp.runs.approvals_api import router as approvals_router
from webapp.runs.limits import RunRefused
from webapp.schedules.api import router as schedules_router
from webapp.teams.api import router as teams_router

log = logging.getLogger(__name__)

JSON_TYPES = ("application/json",)
UNSAFE_METHODS = ("post", "put", "patch", "delete")

DESCRIPTION = """\
Authenticate with `Authorization: Bearer <token>` (the settings page, or
`manage.py apitoken USERNAME`) or the browser session (with its CSRF token).

**Errors** are [problem details](https://www.rfc-editor.org/rfc/rfc9457)
(`application/problem+json`): `type`, `title`, `status`, `code` (the reason, for
programs), `detail` (for people) and, for invalid requests, `errors: [{path, message}]`.

**Bodies** are JSON objects sent as `application/json`. Starting a run or estimating one
also takes `multipart/form-data`: the JSON as the field `body`, and each file input as a
file part named by its input (see `run_create`).

**Lists** are pages: `limit` and `offset` in, `{items, count, next}` out; `next` is the
URL of the following page, null on the last. A run's events page by `after` (a seq).

**Timestamps** are RFC 3339 in UTC (`2025-01-31T12:00:00.000Z`), except the `ts` of run
events, the engine's clock in seconds since the epoch.

**URLs** in answers are relative to this server (`/api/runs/7`, `/s/TOKEN/`).
"""


class SwitchyardParser(Parser):
    """JSON bodies as the contract above says; query strings without NUL characters."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        # Ninja wraps whatever this raises in a 400 "Cannot parse request body"; the
        # HttpError handler below answers with the ProblemError it carries instead.
        media_type = request.content_type.split(";")[0].strip().lower()
        # A run with files as parts (webapp.runs.uploads): its body is its JSON field's.
        if media_type not in JSON_TYPES and not uploads.is_upload(request):
            raise ProblemError(
                415,
                "unsupported_media_type",
                f"send the body as application/json, not {media_type or 'an untyped body'}",
            )
        try:
            data = json.loads(request.body, parse_constant=_no_constant)
        except RecursionError:
            raise ProblemError(400, "malformed_json", "the JSON is nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError among them
            raise ProblemError(400, "malformed_json", f"the body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ProblemError(
                400, "body_not_object", f"the body must be a JSON object, not {_kind(data)}"
            )
        errors = unstorable(data)
        if errors:
            raise invalid_request(errors)
        return data

    def parse_querydict(
        self, data: MultiValueDict, list_fields: list[str], request: HttpRequest
    ) -> dict[str, Any]:
        errors = [
            {"path": f"query.{key}", "message": message}
            for key, values in data.lists()
            for value in values
            if (message := string_problem(value))
        ]
        if errors:
            raise invalid_request(errors)
        return super().parse_querydict(data, list_fields, request)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string"}.get(
        type(value), "an array"
    )


def invalid_request(errors: list[dict[str, str]]) -> ProblemError:
    first = errors[0]
    return ProblemError(
        422, "validation_error", f"{first['path']}: {first['message']}", errors=errors
    )


def _error_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "payload", "name")`` -> ``body.name``: ninja's loc names the Python
    parameter a body arrives in, which means nothing to a client."""
    parts = list(loc)
    if parts[:1] == ["body"] and len(parts) > 1:
        parts = ["body", *parts[2:]]
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


class OfflineSwagger(Swagger):
    """Swagger UI from static/vendor (no CDN) and no inline script: a Content-Security-Policy
    without 'unsafe-inline' still lets the docs page run."""

    template = "api/docs.html"

    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs: Any) -> HttpResponse:
        context = {"api": api, "openapi_url": self.get_openapi_url(api, kwargs)}
        return render(request, self.template, context)


class SwitchyardAPI(NinjaAPI):
    def get_openapi_operation_id(self, operation: Any) -> str:
        # The view function's name (flow_list, run_create, ...): stable across moves
        # between modules, unlike ninja's default, which includes the module path.
        return operation.view_func.__name__

    def get_openapi_schema(self, **kwargs: Any) -> OpenAPISchema:
        schema = super().get_openapi_schema(**kwargs)
        for item in schema["paths"].values():
            for method, operation in item.items():
                _document_operation(method, operation)
        schema["components"]["schemas"].setdefault(
            "ProblemOut", ProblemOut.model_json_schema(ref_template="#/components/schemas/{model}")
        )
        return schema


def _document_operation(method: str, operation: dict[str, Any]) -> None:
    """Add the error answers the machinery gives this kind of operation, as problems."""
    responses = {str(status): answer for status, answer in operation["responses"].items()}
    parameters = operation.get("parameters", [])
    ours: set[int] = set()
    if operation.get("security"):
        # 429: token throttling (accounts.throttle) and the run limits (runs.limits).
        ours |= {401, 429}
        if method in UNSAFE_METHODS:
            ours.add(403)  # a session request without its CSRF token
    if parameters or "requestBody" in operation:
        ours.add(422)
    if "requestBody" in operation:
        ours |= {400, 413, 415}
        # An optional body (RerunIn | None) is absent or an object: a body of null is a 400.
        for media in operation["requestBody"]["content"].values():
            options = media["schema"].get("anyOf", [])
            if len(options) == 2 and {"type": "null"} in options:
                media["schema"] = next(o for o in options if o != {"type": "null"})
    if any(p["in"] == "path" for p in parameters):
        ours.add(404)
    problem = {"$ref": "#/components/schemas/ProblemOut"}
    for status in ours:
        responses.setdefault(str(status), {"content": {"application/json": {"schema": problem}}})
    for status, answer in responses.items():
        code = int(status)
        answer["description"] = HTTPStatus(code).phrase
        if code >= 400 and "content" in answer:
            # Every error answer is application/problem+json (RFC 9457).
            answer["content"] = {problems.CONTENT_TYPE: answer["content"].popitem()[1]}
    operation["responses"] = dict(sorted(responses.items()))
    # Docstrings quote code as ``x`` (reST); the schema's descriptions are Markdown.
    description = (operation.get("description") or "").replace("``", "`")
    if description:
        operation["description"] = description
        operation["summary"] = description.strip().split("\n\n")[0].replace("\n", " ")


api = SwitchyardAPI(
    title="Switchyard API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api",
    parser=SwitchyardParser(),
    docs=OfflineSwagger(),
)
# Versions, export and import live under /api/flows too, in their own modules; first, so
# that /flows/import is not taken for /flows/{flow_id}.
api.add_router("/flows", versions_router)
api.add_router("/flows", transfer_router)
api.add_router("/flows", flows_router)
# Shares, transfer and share links of a flow: their own module, under /api/flows too.
api.add_router("/flows", sharing_router)
# Schedules of a flow (webapp/schedules), under /api/flows too.
api.add_router("/flows", schedules_router)
api.add_router("/flows", webhooks_router)
api.add_router("/flows", chat_router)
# Shares with the caller waiting for their answer.
api.add_router("/shares", pending_shares_router)
api.add_router("/runs", runs_router)
api.add_router("/approvals", approvals_router)
api.add_router("/teams", teams_router)
api.add_router("/editor", editor_router)
api.add_router("/credentials", credentials_router)
api.add_router("/mcp-servers", mcp_servers_router)


# ---- Every error as a problem ------------------------------------------------------------


@api.exception_handler(ProblemError)
def problem(request: HttpRequest, exc: ProblemError) -> HttpResponse:
    return exc.response()


@api.exception_handler(ValidationError)
def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = [_field_error(e) for e in exc.errors]
    return invalid_request(errors or [{"path": "request", "message": "is invalid"}]).response()


def _field_error(error: dict[str, Any]) -> dict[str, str]:
    path = _error_path(error.get("loc", ()))
    if path == "body" and error.get("type") == "missing":
        return {"path": path, "message": "is required: send a JSON object"}
    return {"path": path, "message": error.get("msg", "is invalid")}


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, ProblemError):  # from SwitchyardParser.parse_body
        return exc.__cause__.response()
    if isinstance(exc, AuthenticationError):
        return problems.response(
            401,
            "not_authenticated",
            "send Authorization: Bearer <token>, or log in",
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )
    if isinstance(exc, Throttled):
        return problems.response(429, "throttled", "too many requests; wait and try again")
    if exc.status_code == 403:
        return problems.response(403, "csrf_failed", "the session's CSRF token is missing or wrong")
    if exc.status_code == 400:
        return problems.response(400, "malformed_json", str(exc))
    status = HTTPStatus(exc.status_code)
    return problems.response(status, status.phrase.lower().replace(" ", "_"), str(exc))


@api.exception_handler(throttle.Throttled)
def sign_in_throttled(request: HttpRequest, exc: throttle.Throttled) -> HttpResponse:
    # Too many unknown tokens from this address (auth_api.BearerAuth): told how long to wait.
    retry = {"Retry-After": str(exc.retry_after)}
    return problems.response(429, "throttled", exc.api_detail, headers=retry)


@api.exception_handler(RunRefused)
def run_refused(request: HttpRequest, exc: RunRefused) -> HttpResponse:
    # A limit of the deployment's, raised where every run is made (webapp.runs.services):
    # 429 with too many runs in flight, 403 over the storage quota.
    return exc.response()


@api.exception_handler(Http404)
def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return problems.response(404, "not_found", str(exc) or "Not found.")


@api.exception_handler(PermissionDenied)
def permission_denied(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    # Only raised for objects the caller may see (strangers get 404), so the reason is safe.
    return problems.response(403, "forbidden", str(exc) or "Forbidden")


@api.exception_handler(Exception)
def server_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    # Django's test client re-raises what this signal reports, as for any view's crash.
    signals.got_request_exception.send(sender=None, request=request)
    log.error("%s %s failed", request.method, request.path, exc_info=exc)
    return problems.response(500, "server_error", "the server failed; the error is logged")
