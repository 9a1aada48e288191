"""Refuse oversized API bodies with 413 before anything reads them; parse a multipart run
upload under its caps before anything else reads it (webapp.runs.uploads)."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.decorators import sync_and_async_middleware

from webapp import bodylimit, problems
from webapp.runs import uploads


def _too_large(request: HttpRequest) -> JsonResponse | None:
    upload = _is_upload(request)
    if not request.path.startswith("/api/") and not upload:
        return None
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    limit = (
        bodylimit.limit_for(request.path, request.content_type)
        if upload
        else settings.API_MAX_BODY_BYTES
    )
    if length <= limit:
        return None
    return problems.response(
        413, "body_too_large", f"request body is {length:,} bytes; the limit is {limit:,}"
    )


def _is_upload(request: HttpRequest) -> bool:
    return request.method == "POST" and uploads.takes_files(
        request.path, request.META.get("CONTENT_TYPE")
    )


def _upload_refused(request: HttpRequest) -> JsonResponse | None:
    if not _is_upload(request):
        return None
    problem = uploads.prepare(request)
    return problem.response() if problem is not None else None


@sync_and_async_middleware
def api_body_limit(get_response):
    if iscoroutinefunction(get_response):

        async def middleware(request):
            refused = _too_large(request)
            if refused is None and _is_upload(request):
                refused = await sync_to_async(_upload_refused)(request)
            return refused or await get_response(request)

    else:

        def middleware(request):
            return _too_large(request) or _upload_refused(request) or get_response(request)

    return middleware


def sync_stack(get_response):
    """Last in MIDDLEWARE, and sync only: Django then runs every middleware in its sync mode,
    the whole stack in one trip to the request's thread (webapp.requestthreads), and a sync
    view there too. Without it each of Django's middleware classes, in async mode, takes
    its own trips to that thread for its process_request and process_response (a dozen
    round trips through the event loop per request; WhiteNoise, which is sync only, already
    put the middleware above it on the thread). An async view is called from the thread
    through one ``async_to_sync`` and runs on the loop as before."""
    return get_response


sync_stack.sync_capable = True  # type: ignore[attr-defined]
sync_stack.async_capable = False  # type: ignore[attr-defined]
