"""``/api/`` URLs: ninja's, wrapped so that what ninja answers outside any operation is a
problem too (a 405 for a method the path does not take, the 404 of ``/api/`` itself), and
a last pattern answering every unknown path under ``/api/`` with a problem 404 rather
than Django's HTML page."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path, re_path

from webapp import problems
from webapp.api import api


def _as_problem(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if response.status_code != 405:
        return response
    allowed = response["Allow"]
    answer = problems.response(
        405, "method_not_allowed", f"{request.method} is not allowed here; use {allowed}"
    )
    answer["Allow"] = allowed
    return answer


def _not_found(exc: Http404 | None = None) -> HttpResponse:
    return problems.response(404, "not_found", "no such API path")


def _wrap(view: Callable[..., Any]) -> Callable[..., Any]:
    if iscoroutinefunction(view):

        @wraps(view)
        async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return _as_problem(request, await view(request, *args, **kwargs))
            except Http404 as exc:
                return _not_found(exc)

        return async_view

    @wraps(view)
    def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return _as_problem(request, view(request, *args, **kwargs))
        except Http404 as exc:
            return _not_found(exc)

    return sync_view


def unknown_path(request: HttpRequest, rest: str) -> HttpResponse:
    return _not_found()


# Ninja marks its views csrf_exempt (its session auth checks CSRF itself); wraps keeps that.
unknown_path.csrf_exempt = True  # type: ignore[attr-defined]

# Not named app_name: include() would take a module-level app_name as this module's.
ninja_patterns, ninja_app, ninja_namespace = api.urls
wrapped: list[Any] = [
    URLPattern(p.pattern, _wrap(p.callback), p.default_args, p.name)
    if isinstance(p, URLPattern)
    else p
    for p in ninja_patterns
]
# Last: any path under /api/ that no operation took.
wrapped.append(re_path(r"^(?P<rest>.*)$", unknown_path, name="unknown_path"))
urlpatterns = [path("", (wrapped, ninja_app, ninja_namespace))]
