"""One error shape for the whole API: RFC 9457 problem details.

Every 4xx and 5xx answer under ``/api/`` is ``application/problem+json``::

    {"type": "/api/problems/throttled", "title": "Too many attempts", "status": 429,
     "code": "throttled", "detail": "wait 60 s and try again", "errors": [...]}

``code`` is the machine-readable reason (also the last segment of ``type``), ``detail``
a sentence for a person, and ``errors`` (only where they apply) a list of
``{"path": "body.name", "message": "..."}`` naming the field at fault.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from django.http import JsonResponse
from pydantic import BaseModel, Field

CONTENT_TYPE = "application/problem+json"


def body(
    status: int,
    code: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The problem document for ``status``: code, a plain sentence, and field errors."""
    doc: dict[str, Any] = {
        "type": f"/api/problems/{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "code": code,
        "detail": detail,
    }
    if errors:
        doc["errors"] = errors
    doc.update(extra)
    return doc


def response(
    status: int,
    code: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JsonResponse:
    """A problem-details response, e.g. ``response(429, "throttled", "wait 60 s")``."""
    answer = JsonResponse(
        body(status, code, detail, errors=errors, **extra),
        status=status,
        content_type=CONTENT_TYPE,
    )
    for name, value in (headers or {}).items():
        answer[name] = value
    return answer


class ProblemError(Exception):
    """Raise anywhere under ``/api/`` to answer with a problem (``webapp.api`` renders it)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.headers = headers
        self.extra = extra

    def response(self) -> JsonResponse:
        return response(
            self.status,
            self.code,
            self.detail,
            errors=self.errors,
            headers=self.headers,
            **self.extra,
        )


# The documented shapes (OpenAPI): every error status of every operation names one of these.


class FieldErrorOut(BaseModel):
    path: str = Field(description="Where: body.name, query.limit, path.flow_id ...")
    message: str


class ProblemOut(BaseModel):
    """An error answer (RFC 9457 problem details); operations may add members of their own."""

    type: str = Field(description="/api/problems/{code}")
    title: str = Field(description="The HTTP status's phrase.")
    status: int
    code: str = Field(description="The machine-readable reason.")
    detail: str = Field(description="What went wrong, in a sentence for a person.")
    errors: list[FieldErrorOut] | None = Field(
        None, description="Validation errors only: each field at fault."
    )


def responses(*statuses: int) -> dict[int, type[ProblemOut]]:
    """``response={200: Out, **responses(403, 404)}``: these statuses answer with a problem."""
    return dict.fromkeys(statuses, ProblemOut)
