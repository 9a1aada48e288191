"""``/api/approvals``: the approvals waiting for the caller's answer, across flows.

Answering one is ``POST /api/runs/{id}/approvals/{node}`` (webapp.runs.api).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Field, Router, Schema

from webapp.auth_api import api_auth
from webapp.runs import approvals

router = Router(auth=api_auth, tags=["runs"])


class ApprovalOut(Schema):
    run: int
    flow: int
    flow_name: str
    node: str
    message: str = Field(description="The question, rendered over the node's inputs.")
    fields: list[dict[str, Any]] = Field(description="The form: name, label, kind, choices...")
    actions: list[str]


@router.get("", response=list[ApprovalOut])
def approval_list(request: HttpRequest) -> Any:
    """Approvals that runs of flows the caller may edit wait on, oldest run first."""
    return approvals.pending_for(request.auth)
