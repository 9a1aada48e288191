"""Static files under a versioned prefix, so that browsers keep them instead of asking again.

``{% static "js/canvas/editor.js" %}`` gives ``/static/v/<version>/js/canvas/editor.js``, where
the version is a fingerprint of every static file (path, size, modification time). A response
under the current version is cached for a year and never revalidated (``immutable``): the
next page load asks the server for nothing. Before this each load revalidated ~45 files
(304s, six at a time over HTTP/1.1, each through Django's middleware on one Daphne process),
about a second before the editor's code could start (bench/editor_open.py).

The version names a directory, not each file, because of ES modules: ``import "./panel.js"``
in ``/static/v/abc/js/canvas/editor.js`` resolves to ``/static/v/abc/js/canvas/panel.js``,
so every module the page imports carries the version without a build step or import map.
Any change to any static file changes every URL, which is coarse and always right.

A request under another version (a page rendered before a deploy or an edit) is served the
current file with the ordinary short cache lifetime, never as immutable. The plain
``/static/<name>`` URLs still work.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import StaticFilesStorage
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import sync_and_async_middleware
from whitenoise.middleware import WhiteNoiseMiddleware

IMMUTABLE = "public, max-age=31536000, immutable"
# Versions are 12 hex digits (below); anything else after /v/ is not ours to rewrite.
_VERSIONED = re.compile(r"v/([0-9a-f]{12})/(.+)", re.DOTALL)
# Under DEBUG files change while the server runs: the fingerprint is taken again at most
# this often (a few hundred stat calls). Without DEBUG it is taken once.
DEBUG_TTL_S = 1.0

_cached: tuple[float, str] | None = None


def _fingerprint() -> str:
    digest = hashlib.sha256()
    seen: set[str] = set()
    for finder in finders.get_finders():
        for path, storage in finder.list(None):
            if path in seen:  # the first match is the one served, as finders.find does
                continue
            seen.add(path)
            stat = Path(storage.path(path)).stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:12]


def version() -> str:
    """The current version of the static files: 12 hex digits."""
    global _cached
    now = time.monotonic()
    if _cached is None or (settings.DEBUG and now - _cached[0] > DEBUG_TTL_S):
        _cached = (now, _fingerprint())
    return _cached[1]


class VersionedStaticFilesStorage(StaticFilesStorage):
    """``STATIC_URL/v/<version>/<name>`` for every name (see the module docstring)."""

    def url(self, name: str | None) -> str:
        return super().url(f"v/{version()}/{name}" if name else name)


def _prefix() -> str:
    return "/" + settings.STATIC_URL.strip("/") + "/"


@sync_and_async_middleware
def versioned_static(get_response: Callable) -> Callable:
    """Before WhiteNoise: serve ``/static/v/<version>/<name>`` as ``/static/<name>``, cached
    for good when the version is the current one."""
    prefix = _prefix()

    def unversion(request: HttpRequest) -> str | None:
        if not request.path_info.startswith(prefix):
            return None
        match = _VERSIONED.fullmatch(request.path_info[len(prefix) :])
        if match is None:
            return None
        request.path_info = prefix + match.group(2)
        request.path = request.path_info
        return match.group(1)

    def mark(asked: str | None, response: HttpResponse) -> HttpResponse:
        if asked == version() and response.status_code in (200, 304):
            response["Cache-Control"] = IMMUTABLE
        return response

    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            asked = unversion(request)
            return mark(asked, await get_response(request))

    else:

        def middleware(request: HttpRequest) -> HttpResponse:  # type: ignore[misc]
            asked = unversion(request)
            return mark(asked, get_response(request))

    return middleware


class StaticFiles(WhiteNoiseMiddleware):
    """WhiteNoise, whose scan of the static folders is made once per process.

    A server builds its middleware once, but Django's test client builds it for every
    client, i.e. every test: the scan (a stat and a headers object for each of ~90 files)
    was a sixth of the permission matrix's time. Without ``autorefresh`` (DEBUG off)
    WhiteNoise never looks at the folders again anyway; with it, it never scans."""

    _scanned: ClassVar[dict[str, dict[str, Any]]] = {}

    def add_files_from_finders(self) -> None:
        if self.static_prefix not in self._scanned:
            before = dict(self.files)
            super().add_files_from_finders()
            self._scanned[self.static_prefix] = {
                url: found for url, found in self.files.items() if before.get(url) is not found
            }
        self.files.update(self._scanned[self.static_prefix])
