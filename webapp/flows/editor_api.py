"""``/api/editor``: what the canvas asks the engine while you edit.

``POST /api/editor/ports`` {type, config} -> the node's ports, computed by the engine's
own node types so the canvas never re-implements port logic. ``POST /api/editor/layout``
{graph, sizes?} -> a left-to-right position for every node (see ``layout.py``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Field, Router, Schema
from pydantic import ValidationError, WithJsonSchema

from graphs import templating
from graphs.errors import FlowInvalid
from graphs.validation import config_message
from webapp.api_schema import FLOW_DOCUMENT_SCHEMA, BodyIn
from webapp.auth_api import api_auth
from webapp.flows import forms, layout
from webapp.flows.api import InvalidOut, invalid

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


def ports_for(type_name: str, config: Any) -> dict[str, Any]:
    """The ports of a node of this type and config, best effort when the config is invalid."""
    node_type = forms.node_type_named(type_name)
    if node_type is None:
        known = ", ".join(sorted(forms.NODE_TYPES))
        problem = f"unknown node type {type_name!r} (known types: {known})"
        return {"inputs": [], "outputs": [], "problems": [problem], "known": False}
    if not isinstance(config, dict):
        return {
            "inputs": [],
            "outputs": [],
            "problems": ["config must be an object"],
            "known": False,
        }
    problems: list[str] = []
    try:
        parsed = node_type.Config.model_validate(config)
    except ValidationError as exc:
        problems = [config_message(err) for err in exc.errors()]
        # Ports still follow the fields that are fine, e.g. a prompt next to a bad max_tokens.
        fields = node_type.Config.model_fields
        parsed = node_type.Config.model_construct(
            **{k: v for k, v in config.items() if k in fields}
        )
    try:
        for field, source in node_type.templates(parsed).items():
            try:
                templating.check(source)
            except templating.TemplateProblem as exc:
                return _unknown([*problems, f"{field} {exc}"])
        inputs = node_type.input_ports(parsed)
        outputs = set(node_type.output_ports(parsed))
    except Exception:  # an invalid config may break the type's port logic in any way
        return _unknown(problems)
    if getattr(parsed, "on_error", None) == "continue":
        outputs.add("error")
    order = json.dumps(config, ensure_ascii=False, default=str)
    return {
        "inputs": None if inputs is None else _ordered(inputs, order),
        "outputs": _ordered(outputs, order),
        "problems": problems,
        "known": True,
    }


def _unknown(problems: list[str]) -> dict[str, Any]:
    return {"inputs": [], "outputs": [], "problems": problems, "known": False}


def _ordered(ports: Any, text: str) -> list[str]:
    """Fixed ports first, then in the order the config mentions them; ``error`` last."""
    names = [p for p in ports if isinstance(p, str)]

    def rank(name: str) -> tuple[int, int, str]:
        if name == "error":
            return (2, 0, name)
        at = max(text.find(f'"{name}"'), text.find("{{ " + name), text.find("{{" + name))
        return (0, 0, name) if at < 0 else (1, at, name)

    return sorted(names, key=rank)


@router.post("/ports", response=PortsOut)
def editor_ports(request: HttpRequest, payload: PortsIn) -> Any:
    """The ports of a node of this type and config, as the engine computes them.

    Best effort while the config is being edited: ``problems`` says what is wrong, and
    ``known`` is false when the ports cannot be told yet.
    """
    return ports_for(payload.type, payload.config)


@router.post("/layout", response={200: LayoutOut, 400: InvalidOut})
def editor_layout(request: HttpRequest, payload: LayoutIn) -> Any:
    """A left-to-right position for every node of the document (400 when it has none)."""
    sizes = {k: (v.width, v.height) for k, v in payload.sizes.items()}
    try:
        positions = layout.positions(payload.graph, sizes)
    except FlowInvalid as exc:
        raise invalid(exc, "the flow cannot be laid out") from None
    return {"positions": positions}
