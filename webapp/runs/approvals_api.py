"""``/api/approvals``: the approvals waiting for the caller's answer, across flows.

Answering one is ``POST /api/runs/{id}/approvals/{node}`` (webapp.runs.api).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from webapp.api_schema import PageQuery, page_model, paginate
from webapp.auth_api import api_auth
from webapp.runs import approvals

router = Router(auth=api_auth, tags=["runs"])


class FormFieldOut(Schema):
    name: str
    label: str
    kind: str = Field(description="text, number, choice or boolean")
    choices: list[str]
    required: bool


class ApprovalOut(Schema):
    run: int
    flow: int
    flow_name: str
    node: str
    message: str = Field(description="The question, rendered over the node's inputs.")
    fields: list[FormFieldOut] = Field(description="The form answered with the action.")
    actions: list[str]
    kind: str = Field(
        "approval",
        description="approval (an approval node) or tool_approval (an agent's tool call).",
    )
    tool: str | None = Field(None, description="tool_approval: the tool the agent calls.")
    input: Any = Field(None, description="tool_approval: the call's arguments (JSON).")
    call: str | None = Field(
        None, description="tool_approval: the call's tool_use_id, to send with the answer."
    )


ApprovalPageOut = page_model("ApprovalPageOut", ApprovalOut)


@router.get("", response=ApprovalPageOut)
def approval_list(request: HttpRequest, page: Query[PageQuery]) -> Any:
    """Approvals that runs of flows the caller may edit wait on, oldest run first."""
    return paginate(request, approvals.pending_for(request.auth), page)
