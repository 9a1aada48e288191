"""``/api/editor``: what the canvas asks the engine while you edit.

``POST /api/editor/ports`` {type, config} -> the node's ports, computed by the engine's
own node types so the canvas never re-implements port logic (``core.canvas.ports_for``, which
also gives each page's canvas its first ports). ``POST /api/editor/layout`` {graph, sizes?}
-> a left-to-right position for every node (see ``layout.py``). ``POST /api/editor/validate``
{graph} -> what saving it would say: its ``problems`` (a save would be refused) and its
``warnings`` (it would not), each at its node or edge; 400 for a document of the wrong shape.
"""

from __future__ import annotations

from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Field, Router, Schema
from pydantic import WithJsonSchema

import graphs
from graphs import validation
from graphs.errors import FlowInvalid
from webapp.api_schema import FLOW_DOCUMENT_SCHEMA, BodyIn
from webapp.auth_api import api_auth
from webapp.core.canvas import ports_for
from webapp.execution.plans import user_services
from webapp.flows import services
from webapp.flows.api import FlowProblemOut, InvalidOut, invalid, problem_json
from webapp.flows.editor import layout

router = Router(auth=api_auth, tags=["editor"])


class PortsIn(BodyIn):
    type: str = Field(description="A node type: input, output, template, llm, ...")
    config: dict[str, Any] = Field({}, description="The node's config, valid or not yet.")


class PortsOut(Schema):
    inputs: list[str] | None
    outputs: list[str]
    problems: list[str]
    # False when the ports cannot be told (say, a template that does not parse yet):
    # the canvas then keeps the ports it shows.
    known: bool


class Size(BodyIn):
    width: float
    height: float


class LayoutIn(BodyIn):
    graph: Annotated[Any, WithJsonSchema(FLOW_DOCUMENT_SCHEMA)]
    sizes: dict[str, Size] = Field({}, description="Each node's drawn size, by node id.")


class Position(Schema):
    x: float
    y: float


class LayoutOut(Schema):
    positions: dict[str, Position]


class ValidateIn(BodyIn):
    graph: Annotated[Any, WithJsonSchema(FLOW_DOCUMENT_SCHEMA)]


class ValidateOut(Schema):
    problems: list[FlowProblemOut] = Field(
        description="Why the flow could not run yet (a save keeps them on its version), each "
        "at its node or edge; [] when it could."
    )
    warnings: list[FlowProblemOut] = Field(
        description="What may not do what you meant, though the flow can be saved and run."
    )


@router.post("/validate", response={200: ValidateOut, 400: InvalidOut})
def editor_validate(request: HttpRequest, payload: ValidateIn) -> Any:
    """The engine's check of a document as the editor has it, nothing stored.

    A flow that would not run is this answer's subject, not an error of the request: 200
    with its ``problems`` (what a save would list on the version), and its warnings. A
    document that is not well-formed (400 ``invalid_flow``, as a save answers, which would
    store nothing) has none to give.
    """
    try:
        checked = services.check_graph(payload.graph, request.auth)
    except FlowInvalid as exc:
        raise invalid(exc, "not a flow document") from None
    warnings = validation.warnings(graphs.load(checked.document))
    return {
        "problems": checked.problems_json(),
        "warnings": [problem_json(w) for w in warnings],
    }


@router.post("/ports", response=PortsOut)
def editor_ports(request: HttpRequest, payload: PortsIn) -> Any:
    """The ports of a node of this type and config, as the engine computes them.

    Best effort while the config is being edited: ``problems`` says what is wrong, and
    ``known`` is false when the ports cannot be told yet.
    """
    # A subflow's ports are those of the flow it names, if the user may run it.
    return ports_for(payload.type, payload.config, user_services(request.auth.pk))


@router.post("/layout", response={200: LayoutOut, 400: InvalidOut})
def editor_layout(request: HttpRequest, payload: LayoutIn) -> Any:
    """A left-to-right position for every node of the document (400 when it has none)."""
    sizes = {k: (v.width, v.height) for k, v in payload.sizes.items()}
    try:
        positions = layout.positions(payload.graph, sizes)
    except FlowInvalid as exc:
        raise invalid(exc, "the flow cannot be laid out") from None
    return {"positions": positions}
