"""The Content-Security-Policy header, on every response that has none of its own.

The policy is ``settings.SECURE_CSP``: directive -> list of sources, the shape Django 6.0's
built-in ``django.middleware.csp.ContentSecurityPolicyMiddleware`` reads from the same
setting, so moving to it is a change of the MIDDLEWARE entry. Until then this is ours
rather than django-csp: the policy is one fixed header with no per-view variations and no
nonces (the pages have no inline script or style), which needs a dozen lines, not a
dependency with settings of its own that the upgrade would have to undo.

``connect-src`` also gets this host's websocket origin (``ws://host`` or ``wss://host``):
``'self'`` covers websockets in current browsers only (CSP Level 3).

Django's own error pages under DEBUG (the yellow 404 and 500 pages) get no policy: they are
built of inline styles and scripts, and are never served with DEBUG off.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

HEADER = "Content-Security-Policy"
# In the head of django/views/templates/technical_404.html and technical_500.html.
DEBUG_PAGE_MARK = b'<meta name="robots" content="NONE,NOARCHIVE">'


def policy(request: HttpRequest, **overrides: list[str]) -> str:
    """The header's value for this request; `overrides` replace whole directives (named
    with ``_`` for ``-``), as the chat page does with ``frame_ancestors``."""
    directives = {name: list(sources) for name, sources in settings.SECURE_CSP.items()}
    for name, sources in overrides.items():
        directives[name.replace("_", "-")] = list(sources)
    if "connect-src" in directives:
        try:
            host = request.get_host()
        except DisallowedHost:
            host = None
        if host:
            directives["connect-src"].append(f"{'wss' if request.is_secure() else 'ws'}://{host}")
    return "; ".join(" ".join([name, *sources]) for name, sources in directives.items())


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Adds the policy (settings.SECURE_CSP) to responses that do not set their own.

    MiddlewareMixin: it runs in the event loop under ASGI, with no thread hop."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if settings.SECURE_CSP and HEADER not in response and not _debug_page(response):
            response[HEADER] = policy(request)
        return response


def _debug_page(response: HttpResponse) -> bool:
    if not settings.DEBUG or response.status_code < 400 or response.streaming:
        return False
    return DEBUG_PAGE_MARK in response.content[:1000]
