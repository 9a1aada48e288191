"""Flows that run other flows: the ``subflow`` node, and saved flows as an agent's tools.

The seam. The engine knows saved flows only through ``Services.flows``, a ``FlowSource``
lent by its host:

- ``look_up(reference, version)`` gives the flow's ``FlowInfo`` (document, name,
  description, inputs, outputs), or raises ``FlowUnavailable`` with words for the flow's
  author: no such flow, one its runner may not run, or a call that would recurse. A
  ``subflow`` node's ports are the looked-up flow's inputs and outputs, so a flow is
  checked against what it calls when it is validated;
- ``run(call, services)`` runs the flow as a child of a node (``ChildCall``: reference,
  version, inputs, the calling node and iteration) and returns a ``ChildResult``: status,
  outputs, error, usage by model (which the caller adds to its own, so a parent's cost
  includes its children's) and the host's id of the child run, which the node's
  ``node_finished`` carries in ``child_runs`` so a viewer can open it. Cancelling the
  awaiting task cancels the child.

References. A reference names a flow to its source: ``REFERENCE``, letters, digits, ``_``
and ``-``, starting with a letter or digit, at most 59 characters (an agent offers the
flow to the API as the tool ``flow_<reference>``, and the API's tool names stop at 64). No
``.``, ``/`` or ``\\``: read as a file name, a reference cannot leave its directory. The
web app's references are flow ids; the command line's (``graphs.flowfiles.FileFlows``)
are the names of JSON documents, without ``.json``, in a flows directory (``--flows
DIR``, else the directory of the flow being run).

Recursion. Each source knows the chain of flows it runs inside, outermost first;
``refusal`` refuses a call whose reference is in the chain already (a cycle: A calls B
calls A) or that would nest deeper than the source's ``max_depth`` (``MAX_DEPTH``). Both
``look_up`` and ``run`` apply it, so a flow that calls itself is refused when it is
validated, and a longer cycle at the latest when it closes.

>>> info = describe("greet", {"graph": {"name": "Greet", "description": "Says hello."},
...     "nodes": [{"id": "w", "type": "input", "config": {"name": "who"}},
...               {"id": "t", "type": "input", "config": {"name": "tone", "default": "warm"}},
...               {"id": "o", "type": "output", "config": {"name": "greeting"}}]})
>>> info.input_names, info.required, info.outputs
(('tone', 'who'), ('who',), ('greeting',))
>>> info.tool_schema()["required"]
['who']
>>> refusal(("a", "b"), "a", 5)
'flow a calls itself: a -> b -> a'
>>> refusal(("a", "b"), "c", 1)
'subflows nest at most 1 deep: a -> b -> c'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from graphs.llm.types import Usage

if TYPE_CHECKING:
    from graphs.nodes.base import Services

REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,58}")
REFERENCE_HELP = "letters, digits, _ and -, starting with a letter or digit, at most 59 characters"
# How an agent's config names a flow among its tools, and how the API sees that tool.
TOOL_PREFIX = "flow:"
API_TOOL_PREFIX = "flow_"
MAX_DEPTH = 5


class FlowUnavailable(Exception):
    """The flow cannot be called: the message says why, for the flow's author; ``field``
    is the config field it is about (``flow``, or ``version`` when only that is wrong)."""

    def __init__(self, message: str, field: str = "flow"):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class FlowInfo:
    """What a caller needs to know of a flow: its ports, and what to tell a model of it."""

    reference: str
    name: str
    description: str
    document: Mapping[str, Any]
    # Input name -> its default; a required input is absent from ``defaults``.
    input_names: tuple[str, ...]
    defaults: Mapping[str, Any]
    outputs: tuple[str, ...]
    # The version described, where the source keeps versions (the web app's).
    version: int | None = None

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(name for name in self.input_names if name not in self.defaults)

    def tool_schema(self) -> dict[str, Any]:
        """The flow's inputs as an agent tool's ``input_schema``: any JSON value each."""
        return {
            "type": "object",
            "properties": {
                name: {"description": f"the flow's input {name!r}"}
                | ({"default": self.defaults[name]} if name in self.defaults else {})
                for name in self.input_names
            },
            "required": list(self.required),
        }

    def tool_description(self) -> str:
        about = self.description.strip() or f"Runs the flow {self.name!r}."
        outputs = ", ".join(self.outputs) or "none"
        return f"{about} (A flow; returns its outputs as JSON: {outputs}.)"


@dataclass(frozen=True)
class ChildCall:
    """A node's call of a flow."""

    reference: str
    version: int | None
    inputs: Mapping[str, Any]
    node: str
    iteration: int


@dataclass(frozen=True)
class ChildResult:
    status: str
    outputs: dict[str, Any]
    error: str | None = None
    usage_by_model: dict[str, Usage] = field(default_factory=dict)
    # The host's id of the child run; None where nothing records it (the command line).
    run: int | str | None = None

    def failure(self, reference: str) -> str:
        """The child's end, in words for the calling node's error."""
        where = f" (run {self.run})" if self.run is not None else ""
        return f"flow {reference}{where} {self.status}: {self.error or self.status}"


class FlowSource(Protocol):
    def look_up(self, reference: str, version: int | None = None) -> FlowInfo: ...

    async def run(self, call: ChildCall, services: Services) -> ChildResult: ...


def check_reference(reference: str) -> str | None:
    """What is wrong with a reference, or None."""
    if not isinstance(reference, str) or not REFERENCE.fullmatch(reference):
        return f"flow reference {str(reference)[:80]!r} is not valid: {REFERENCE_HELP}"
    return None


def refusal(chain: tuple[str, ...], reference: str, max_depth: int) -> str | None:
    """Why a flow running inside ``chain`` may not call ``reference``, or None."""
    path = " -> ".join((*chain, reference))
    if reference in chain:
        return f"flow {reference} calls itself: {path}"
    if len(chain) > max_depth:
        return f"subflows nest at most {max_depth} deep: {path}"
    return None


def describe(reference: str, document: Mapping[str, Any], version: int | None = None) -> FlowInfo:
    """A flow's ``FlowInfo`` from its document (input and output nodes, graph attributes)."""
    graph: Mapping[str, Any] = document.get("graph") or {}
    nodes: list[Any] = document.get("nodes") or []
    if not isinstance(graph, Mapping):
        graph = {}
    if not isinstance(nodes, list):
        nodes = []
    names: list[str] = []
    defaults: dict[str, Any] = {}
    outputs: list[str] = []
    for node in nodes:
        config = node.get("config") if isinstance(node, Mapping) else None
        if not isinstance(config, Mapping) or not isinstance(config.get("name"), str):
            continue
        if node.get("type") == "input":
            names.append(config["name"])
            if "default" in config:
                defaults[config["name"]] = config["default"]
        elif node.get("type") == "output":
            outputs.append(config["name"])
    return FlowInfo(
        reference=reference,
        name=str(graph.get("name") or reference),
        description=str(graph.get("description") or ""),
        document=document,
        input_names=tuple(sorted(names)),
        defaults=defaults,
        outputs=tuple(sorted(outputs)),
        version=version,
    )


def tool_reference(tool_name: str) -> str | None:
    """The flow reference of an agent's tool name ``flow:<reference>``, else None."""
    return tool_name[len(TOOL_PREFIX) :] if tool_name.startswith(TOOL_PREFIX) else None


class NoFlows:
    """A source with no flows: what a host that lends none gives."""

    chain: tuple[str, ...] = ()

    def look_up(self, reference: str, version: int | None = None) -> FlowInfo:
        raise FlowUnavailable(f"no flow {reference!r}: this host offers no saved flows to call")

    async def run(self, call: ChildCall, services: Services) -> ChildResult:
        return ChildResult("failed", {}, f"no flow {call.reference!r}: no saved flows here")


NO_FLOWS = NoFlows()


def tool_content(outputs: Mapping[str, Any]) -> str:
    """A child's outputs as a tool result: one output's text as it is, else JSON."""
    if len(outputs) == 1:
        (value,) = outputs.values()
        if isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(dict(outputs), ensure_ascii=False)
