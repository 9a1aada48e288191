"""``/api/editor``: what the canvas asks the engine while you edit.

``POST /api/editor/ports`` {type, config} -> the node's ports, computed by the engine's
own node types so the canvas never re-implements port logic (``core.canvas.ports_for``, which
also gives each page's canvas its first ports). ``POST /api/editor/layout`` {graph, sizes?}
-> a left-to-right position for every node (see ``layout.py``). ``POST /api/editor/validate``
{graph} -> what saving it would say: its ``problems`` (a save would be refused) and its
``warnings`` (it would not), each at its node or edge; 400 for a document of the wrong shape.
``POST /api/editor/rename`` {graph, node, key} and ``POST /api/editor/rename-port``
{graph, node, port, name} -> the document with a node's key (or a merge's port) renamed and
what used it rewritten (``graphs.keys``); the canvas applies it as one undoable change.
"""

from __future__ import annotations

from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Field, Router, Schema
from pydantic import WithJsonSchema

import graphs
from graphs import keys, validation
from graphs.document import IDENTIFIER_RULE
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


class RenameIn(BodyIn):
    graph: Annotated[Any, WithJsonSchema(FLOW_DOCUMENT_SCHEMA)]
    node: str = Field(description="The key (id) of the node to rename.")
    key: str = Field(description="Its new key: " + IDENTIFIER_RULE + ", unique in the flow.")


class RenamePortIn(BodyIn):
    graph: Annotated[Any, WithJsonSchema(FLOW_DOCUMENT_SCHEMA)]
    node: str = Field(description="The merge whose input port to rename.")
    port: str = Field(description="The port's name now.")
    name: str = Field(description="Its new name: " + IDENTIFIER_RULE + ".")


class RenamedOut(Schema):
    graph: Annotated[Any, WithJsonSchema(FLOW_DOCUMENT_SCHEMA)]


@router.post("/rename", response={200: RenamedOut, 400: InvalidOut})
def editor_rename(request: HttpRequest, payload: RenameIn) -> Any:
    """The document with node ``node`` keyed ``key``: its edges, a merge's port named after
    it and the references to that port after the merge follow. Nothing is stored.

    400 ``invalid_flow`` when the key is no identifier, is taken, or the node is missing.
    """
    try:
        graphs.load(payload.graph)  # a flow document, or 400 naming what is wrong with it
        return {"graph": keys.rename_node(payload.graph, payload.node, payload.key)}
    except FlowInvalid as exc:
        raise invalid(exc, "the node cannot take that key") from None


@router.post("/rename-port", response={200: RenamedOut, 400: InvalidOut})
def editor_rename_port(request: HttpRequest, payload: RenamePortIn) -> Any:
    """The document with input port ``port`` of merge ``node`` called ``name``: its edges and
    the references after the merge (``{{ value.port }}``) follow. Nothing is stored."""
    try:
        graphs.load(payload.graph)
        return {"graph": keys.rename_port(payload.graph, payload.node, payload.port, payload.name)}
    except FlowInvalid as exc:
        raise invalid(exc, "the port cannot take that name") from None


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
