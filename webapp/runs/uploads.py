"""Files as parts of a multipart body: a run (or its estimate) with files, without base64.

Where: ``POST /api/flows/{id}/runs``, ``POST /api/flows/{id}/estimate`` and the editor's
``POST /flows/{id}/editor-runs/`` take ``multipart/form-data`` as well as JSON:

- an optional text field ``body``: the JSON object the JSON form sends (``inputs``,
  ``version``, ``budget_usd`` ...), without the files;
- one file part per file input, the part named by the input (its file name is kept for
  people, as ``safe_name`` cleans it). No other field, nor two parts for one input.

Caps, each before more is read than it allows:

- the whole body: ``upload_limit()`` (the API's body cap plus ``RUN_FILES_MAX_BYTES``),
  refused with 413 by ``webapp.bodylimit`` from its declared length or as it arrives;
- each file and all of them: ``CappedUpload`` counts the parts as Django's multipart
  parser hands them over, ahead of ``TemporaryFileUploadHandler`` (which streams them to
  temporary files, never holding a large one in memory), and stops the parse at the first
  byte past ``RUN_FILE_MAX_BYTES`` or ``RUN_FILES_MAX_BYTES``: 413 ``file_too_large``
  naming the input.

``prepare`` (webapp.middleware, before anything reads the body: the CSRF check reads it)
installs the handlers and parses; what it refuses it answers itself. From then on the
request's ``body`` is the JSON of its ``body`` field (``{}`` without one), and
``sent_files`` its files.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.files.uploadhandler import (
    FileUploadHandler,
    StopUpload,
    TemporaryFileUploadHandler,
)
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParserError

from webapp.problems import ProblemError

BODY_FIELD = "body"
MULTIPART = "multipart/form-data"
# The requests that take files as parts: a run's start and estimate, API and editor.
UPLOAD_PATHS = re.compile(r"/api/flows/\d+/(?:runs|estimate)|/flows/\d+/editor-runs/")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def takes_files(path: str, content_type: str | None) -> bool:
    """Whether a request to ``path`` of ``content_type`` is a multipart run upload."""
    return media_type(content_type) == MULTIPART and UPLOAD_PATHS.fullmatch(path) is not None


def upload_limit() -> int:
    """The largest multipart run body: the JSON the API takes, plus the run's files."""
    return settings.API_MAX_BODY_BYTES + settings.RUN_FILES_MAX_BYTES


class CappedUpload(FileUploadHandler):
    """Counts each file part and all of them; past a cap it notes why and stops the parse
    (the parser then drops the rest of the body)."""

    def __init__(self, request: HttpRequest | None = None):
        super().__init__(request)
        self.per_file = settings.RUN_FILE_MAX_BYTES
        self.per_run = settings.RUN_FILES_MAX_BYTES
        self.input = ""
        self.size = self.total = 0

    def new_file(self, field_name: str, *args: Any, **kwargs: Any) -> None:
        super().new_file(field_name, *args, **kwargs)
        self.input, self.size = field_name, 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.size += len(raw_data)
        self.total += len(raw_data)
        if self.per_file and self.size > self.per_file:
            self._refuse(
                f"file input {self.input!r} is over {self.per_file} bytes: the limit is "
                f"{self.per_file} bytes per file"
            )
        if self.per_run and self.total > self.per_run:
            self._refuse(
                f"file input {self.input!r} takes the run's files past {self.per_run} bytes, "
                "the limit per run"
            )
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler makes the file

    def _refuse(self, detail: str) -> None:
        self.request.upload_problem = ProblemError(413, "file_too_large", detail)  # type: ignore[union-attr]
        raise StopUpload(connection_reset=False)


def prepare(request: HttpRequest) -> ProblemError | None:
    """Parse a multipart run upload under the caps (``takes_files`` said it is one): the
    problem to answer with, or None when its fields and files are ready."""
    request.upload_handlers = [CappedUpload(request), TemporaryFileUploadHandler(request)]
    try:
        request.POST  # noqa: B018  (parses fields and files)
    except RequestDataTooBig:
        return ProblemError(
            413,
            "body_too_large",
            f"the field {BODY_FIELD!r} is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes",
        )
    except (TooManyFieldsSent, TooManyFilesSent) as exc:
        return ProblemError(400, "malformed_multipart", str(exc))
    except MultiPartParserError as exc:
        return ProblemError(400, "malformed_multipart", f"the multipart body is malformed: {exc}")
    problem = getattr(request, "upload_problem", None)
    if problem is not None:
        return problem
    fields = [name for name in request.POST if name != BODY_FIELD]
    if fields:
        return ProblemError(
            400,
            "malformed_multipart",
            f"unexpected field {fields[0]!r}: send the JSON as the field {BODY_FIELD!r} and "
            "each file as a file part named by its input",
        )
    twice = [name for name, parts in request.FILES.lists() if len(parts) > 1]
    if twice:
        return ProblemError(400, "file_refused", f"file input {twice[0]!r} is sent twice")
    if len(request.POST.getlist(BODY_FIELD)) > 1:
        return ProblemError(400, "malformed_multipart", f"the field {BODY_FIELD!r} is sent twice")
    request.run_upload = True  # type: ignore[attr-defined]
    # Read on, the request's body is its JSON: what the JSON form would have sent (ninja
    # and the editor's view read it so; the stream it came from is spent).
    request._body = (request.POST.get(BODY_FIELD, "").strip() or "{}").encode()
    return None


def is_upload(request: HttpRequest) -> bool:
    """Whether ``prepare`` took this request's body as a multipart run upload."""
    return getattr(request, "run_upload", False)


def sent_files(request: HttpRequest) -> dict[str, Any]:
    """An upload's files as ``webapp.runs.files.Sent``, by input name (read here: their
    size is capped)."""
    from webapp.runs.files import Sent

    found = {}
    for name, upload in request.FILES.items():
        upload.seek(0)
        found[name] = Sent(upload.name or "", upload.read())
        upload.close()
    return found
