"""The JSON API (django-ninja): OpenAPI schema at /api/openapi.json, docs at /api/docs.

One router per module; each module checks permissions through the access functions.
"""

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI

from webapp import problems
from webapp.accounts import throttle
from webapp.flows.api import router as flows_router
from webapp.flows.editor_api import router as editor_router
from webapp.flows.share_api import router as sharing_router
from webapp.flows.version_api import router as versions_router
from webapp.runs.api import router as runs_router
from webapp.runs.limits import RunRefused
from webapp.teams.api import router as teams_router

api = NinjaAPI(title="Switchyard API", version="1", urls_namespace="api")
# Versions, export and import live under /api/flows too, in their own module; first, so
# that /flows/import is not taken for /flows/{flow_id}.
api.add_router("/flows", versions_router)
api.add_router("/flows", flows_router)
# Shares, transfer and share links of a flow: their own module, under /api/flows too.
api.add_router("/flows", sharing_router)
api.add_router("/runs", runs_router)
api.add_router("/teams", teams_router)
api.add_router("/editor", editor_router)


@api.exception_handler(RunRefused)
def run_refused(request: HttpRequest, exc: RunRefused) -> HttpResponse:
    # A limit of the deployment's, raised where every run is made (webapp.runs.services):
    # 429 with too many runs in flight, 403 over the storage quota.
    return exc.response()


@api.exception_handler(PermissionDenied)
def permission_denied(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    # Only raised for objects the caller may see (strangers get 404), so the reason is safe.
    return api.create_response(request, {"detail": str(exc) or "Forbidden"}, status=403)


@api.exception_handler(throttle.Throttled)
def sign_in_throttled(request: HttpRequest, exc: throttle.Throttled) -> HttpResponse:
    # Too many unknown tokens from this address (auth_api.BearerAuth): told how long to wait.
    retry = {"Retry-After": str(exc.retry_after)}
    return problems.response(429, "throttled", exc.api_detail, headers=retry)
