"""The MCP tools of one user: their published flows, each a tool that runs it.

A user's tools are the flows they may run (the editor role, as ``POST .../runs`` asks) that
have a published version; a viewer, a stranger and an unpublished flow see no tool.

- **Name**: ``[a-z0-9_]{1,64}``, the flow's name folded to ASCII lower case, every other
  run of characters one ``_``, then ``_`` and the flow's id (``summarize_12``): unique,
  and safe in any client. A call names the flow by the id and must give the whole name the
  flow has now (a renamed flow's old name is an unknown tool, as any other).
- **Description**: the published version's ``description`` (graph attribute), then a
  sentence naming the flow; **title**: the flow's name.
- **Input schema**: one property per input node of the published version. An input
  without a default is required and a string; one with a default is optional, and typed by
  its default (a list default takes an array, a number a number; a ``null`` default any
  JSON value). Nothing else is accepted.
- **Output schema**: ``run_id``, ``run_url``, ``status`` and ``outputs`` (an object by
  output name): what a successful call returns as structured content.

Everything here but ``page`` and ``start`` is pure: the shapes are tested without a server.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphs.errors import FlowInvalid
from graphs.spec import InputSpec
from webapp.api_schema import unstorable
from webapp.execution.plans import compiled_version
from webapp.flows import access
from webapp.flows.models import Flow
from webapp.runs.models import Run
from webapp.runs.services import create_run

NAME_MAX = 64
TOOL_NAME = re.compile(r"[a-z0-9_]{1,64}")
_FLOW_ID = re.compile(r"_([0-9]{1,19})")
PAGE_SIZE = 100
DESCRIPTION_MAX = 4000
_JSON_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "boolean"),  # before the numbers: True is an int to Python, not to JSON
    ((int, float), "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
    (type(None), "null"),
)


class UnknownTool(LookupError):
    """No tool of that name for this user (a missing, hidden or unpublished flow alike)."""


class BadArguments(ValueError):
    """The arguments do not fit the tool's inputs; ``problems`` says how, input by input."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


# Pure: names and schemas --------------------------------------------------------------


def tool_name(flow_id: int, flow_name: str) -> str:
    """``summarize_12``: the flow's name as ``[a-z0-9_]``, then its id.

    >>> tool_name(12, "Summarize!"), tool_name(3, "Café — notes"), tool_name(4, "✓✓")
    ('summarize_12', 'cafe_notes_3', 'flow_4')
    """
    ascii_name = unicodedata.normalize("NFKD", flow_name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")
    suffix = f"_{flow_id}"
    slug = slug[: NAME_MAX - len(suffix)].rstrip("_") or "flow"
    return slug + suffix


def flow_id_of(name: str) -> int | None:
    """The flow id a tool name ends with, or None when it is no tool name of ours."""
    if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
        return None
    match = _FLOW_ID.search(name)
    if match is None or match.end() != len(name):
        return None
    return int(match.group(1))


def json_type(value: Any) -> str:
    """The JSON Schema type of a JSON value (an integer is a number)."""
    for python_type, name in _JSON_TYPES:
        if isinstance(value, python_type):
            return name
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def input_property(spec: InputSpec) -> dict[str, Any]:
    if not spec.has_default:
        return {"type": "string", "description": f"The flow's input {spec.name!r} (required)."}
    prop: dict[str, Any] = {
        "description": f"The flow's input {spec.name!r}; default: the flow's own.",
        "default": spec.default,
    }
    if spec.default is not None:
        prop["type"] = json_type(spec.default)
    return prop


def input_schema(inputs: Mapping[str, InputSpec]) -> dict[str, Any]:
    """The tool's ``inputSchema`` from the flow's input nodes."""
    return {
        "type": "object",
        "properties": {name: input_property(spec) for name, spec in sorted(inputs.items())},
        "required": sorted(name for name, spec in inputs.items() if not spec.has_default),
        "additionalProperties": False,
    }


def output_schema(outputs: list[str]) -> dict[str, Any]:
    """The tool's ``outputSchema``: what a successful call's structured content holds."""
    return {
        "type": "object",
        "properties": {
            "run_id": {"type": "integer"},
            "run_url": {"type": "string", "description": "The run's page."},
            "status": {"const": Run.Status.SUCCEEDED.value},
            "outputs": {
                "type": "object",
                "description": "The run's outputs by name (a branch not taken gives none).",
                "properties": {name: {} for name in sorted(outputs)},
                "additionalProperties": False,
            },
        },
        "required": ["run_id", "run_url", "status", "outputs"],
    }


def description(flow_name: str, flow_description: str, version: int) -> str:
    about = (
        f"Runs the Switchyard flow {flow_name!r} (published version {version}) and returns "
        "its outputs as JSON, with the URL of the run."
    )
    text = f"{flow_description.strip()}\n\n{about}" if flow_description.strip() else about
    return text[:DESCRIPTION_MAX]


def argument_problems(inputs: Mapping[str, InputSpec], arguments: Mapping[str, Any]) -> list[str]:
    """What is wrong with `arguments` for these inputs, one sentence per input; [] if fine.

    >>> spec = {"topic": InputSpec("t", "topic", False, None)}
    >>> argument_problems(spec, {"topic": 3, "tone": "dry"})
    ["unknown input 'tone' (inputs: topic)", "input 'topic' must be a string, not a number"]
    >>> argument_problems(spec, {})
    ["input 'topic' is required"]
    """
    known = ", ".join(sorted(inputs)) or "none"
    problems = [
        f"unknown input {name!r} (inputs: {known})" for name in arguments if name not in inputs
    ]
    for name, spec in sorted(inputs.items()):
        if name not in arguments:
            if not spec.has_default:
                problems.append(f"input {name!r} is required")
            continue
        expected = input_property(spec).get("type")
        given = json_type(arguments[name])
        if expected is not None and given != expected:
            problems.append(f"input {name!r} must be {_a(expected)}, not {_a(given)}")
    return problems


def _a(type_name: str) -> str:
    """``a string``, ``an object``, ``null``."""
    if type_name == "null":
        return type_name
    return f"an {type_name}" if type_name[0] in "aeiou" else f"a {type_name}"


# With the database ---------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


def published_flows(user) -> Any:
    """The flows `user` may run from outside: editor or more, with a published version."""
    return access.editable_flows(user).filter(published__isnull=False).select_related("published")


def tool_of(flow: Flow) -> Tool | None:
    """The tool that runs `flow`'s published version; None when that version cannot run."""
    version = flow.published
    assert version is not None
    try:
        compiled = compiled_version(version)
    except FlowInvalid:
        return None
    outputs = [
        spec.config.name  # type: ignore[attr-defined]
        for spec in compiled.nodes.values()
        if spec.type.name == "output"
    ]
    graph_description = (version.graph.get("graph") or {}).get("description") or ""
    return Tool(
        name=tool_name(flow.pk, flow.name),
        title=flow.name,
        description=description(flow.name, str(graph_description), version.number),
        input_schema=input_schema(compiled.inputs),
        output_schema=output_schema(outputs),
    )


def page(user, cursor: str | None) -> tuple[list[Tool], str | None]:
    """One page of the user's tools in flow id order, and the cursor of the next (or None).

    The cursor is the last flow id given; ValueError when it is not one.
    """
    flows = published_flows(user).order_by("pk")
    if cursor is not None:
        if not cursor.isdigit() or len(cursor) > 19:
            raise ValueError(f"invalid cursor {cursor[:40]!r}")
        flows = flows.filter(pk__gt=int(cursor))
    chunk = list(flows[: PAGE_SIZE + 1])
    more = len(chunk) > PAGE_SIZE
    chunk = chunk[:PAGE_SIZE]
    tools = [tool for tool in map(tool_of, chunk) if tool is not None]
    return tools, str(chunk[-1].pk) if more else None


def start(user, name: str, arguments: Mapping[str, Any]) -> Run:
    """Start a run of the tool's flow, its published version, as started by MCP.

    Raises UnknownTool, BadArguments (naming each input at fault, and what no database can
    store, as the API refuses it), FlowInvalid (the engine's word, should the version no
    longer run) or limits.RunRefused (the user's run limits).
    """
    flow_id = flow_id_of(name)
    flow = published_flows(user).filter(pk=flow_id).first() if flow_id is not None else None
    if flow is None or tool_name(flow.pk, flow.name) != name:
        raise UnknownTool(name)
    version = flow.published
    assert version is not None
    compiled = compiled_version(version)
    problems = argument_problems(compiled.inputs, arguments) + [
        f"{error['path']} {error['message']}" for error in unstorable(arguments, "arguments")
    ]
    if problems:
        raise BadArguments(problems)
    return create_run(flow, user, dict(arguments), version=version, trigger=Run.Trigger.MCP)


def finished(run_id: int) -> Run:
    return Run.objects.get(pk=run_id)
