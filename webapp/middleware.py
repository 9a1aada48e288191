"""Refuse oversized API bodies with 413 before anything reads them."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.decorators import sync_and_async_middleware

from webapp import problems


def _too_large(request: HttpRequest) -> JsonResponse | None:
    if not request.path.startswith("/api/"):
        return None
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    limit = settings.API_MAX_BODY_BYTES
    if length <= limit:
        return None
    return problems.response(
        413, "body_too_large", f"request body is {length:,} bytes; the limit is {limit:,}"
    )


@sync_and_async_middleware
def api_body_limit(get_response):
    if iscoroutinefunction(get_response):

        async def middleware(request):
            return _too_large(request) or await get_response(request)

    else:

        def middleware(request):
            return _too_large(request) or get_response(request)

    return middleware
