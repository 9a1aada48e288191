"""Validation: every reason a flow graph cannot run, each naming its node or edge.

>>> from graphs.document import load
>>> from graphs.settings import default_services
>>> G = load({
...     "graph": {"name": "loop"},
...     "nodes": [
...         {"id": "a", "type": "template", "config": {"template": "{{ text }}"}},
...         {"id": "b", "type": "template", "config": {"template": "{{ text }}"}},
...     ],
...     "edges": [
...         {"source": "a", "target": "b", "source_port": "text", "target_port": "text"},
...         {"source": "b", "target": "a", "source_port": "text", "target_port": "text"},
...     ],
... })
>>> [str(p) for p in validate(G, default_services())]
["node 'a': unguarded cycle a -> b -> a: set max_iterations on one of its nodes"]

Which node types and tools exist is the ``Services``' say (``services.registry``), so
the caller passes them: this module sits below the registry, whose ``map`` validates its
inline flow here. ``graphs.validate`` passes ``graphs.settings.default_services()`` when
given none.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import networkx as nx
from pydantic import ValidationError

from graphs import templating
from graphs.errors import Problem
from graphs.loops import loop_order, pick_entry
from graphs.nodes.base import CommonConfig, NodeType, Services, template_ports


@dataclass(frozen=True)
class CheckedNode:
    """A node whose type and config passed, with the ports they give it."""

    type: NodeType
    config: CommonConfig
    in_ports: frozenset[str] | None
    out_ports: frozenset[str]
    optional: frozenset[str] = frozenset()


def validate(graph: nx.MultiDiGraph, services: Services) -> list[Problem]:
    """Every problem of the flow graph; an empty list means it can run."""
    return check(graph, services)[1]


# The one seam between "not a flow document" and "a flow that cannot run yet".
#
# Malformed: what no editor could have meant and a save refuses, storing nothing: the
# document's shape and size caps (``graphs.document.load``), an unknown node type, a
# config value of the wrong type, an unknown config key, an identifier outside its
# character set, a value over its length cap. Everything else (a required field left
# empty, a port not wired yet, a cycle, a bad template) is a *problem*: unfinished work,
# saved and listed on its version, and a reason not to run or publish it.
MALFORMED_CONFIG_ERRORS = frozenset(
    {
        "extra_forbidden",
        "string_pattern_mismatch",
        "string_too_long",
        "too_long",
        "literal_error",
        "enum",
        "union_tag_invalid",
        "union_tag_not_found",
        "model_attributes_type",
        "is_instance_of",
    }
)


def is_malformed_config_error(error: Mapping[str, Any]) -> bool:
    """Whether one pydantic error of a node config makes the document malformed."""
    kind = str(error["type"])
    if kind == "string_pattern_mismatch" and error.get("input") == "":
        return False  # left empty, not mistyped: a required field to fill in
    return kind in MALFORMED_CONFIG_ERRORS or kind.endswith("_type") or kind.endswith("_parsing")


def malformed(graph: nx.MultiDiGraph, services: Services) -> list[Problem]:
    """What makes a loaded document not well-formed (see above); [] when it is.

    >>> from graphs.document import load
    >>> from graphs.settings import default_services
    >>> G = load({"graph": {"name": "m"}, "nodes": [
    ...     {"id": "a", "type": "nope"},
    ...     {"id": "b", "type": "input", "config": {"name": "has space"}},
    ...     {"id": "c", "type": "llm", "config": {"prompt": ""}}], "edges": []})
    >>> [p.node for p in malformed(G, default_services())]
    ['a', 'b']
    """
    found: list[Problem] = []
    for node_id, data in graph.nodes(data=True):
        type_name = data.get("type")
        node_type = services.registry.get(type_name) if isinstance(type_name, str) else None
        if node_type is None:
            found += _check_node(node_id, data, services)[1]
            continue
        try:
            node_type.Config.model_validate(data.get("config") or {})
        except ValidationError as exc:
            errors = exc.errors()
            # The node's every config error, once one makes the document malformed: the
            # refusal then lists all that is wrong with it.
            if any(is_malformed_config_error(err) for err in errors):
                found += [Problem(config_message(err), node=node_id) for err in errors]
    return found


def check(
    graph: nx.MultiDiGraph, services: Services
) -> tuple[dict[str, CheckedNode], list[Problem]]:
    """The nodes that passed, and every problem; compile needs the problems empty."""
    checked: dict[str, CheckedNode] = {}
    problems: list[Problem] = []
    for node_id, data in graph.nodes(data=True):
        node, found = _check_node(node_id, data, services)
        problems += found
        if node is not None:
            checked[node_id] = node
    problems += _check_edges(graph, checked)
    problems += _check_names(graph, checked)
    problems += _check_cycles(graph, checked)
    problems += _check_loop_edges(graph)
    return checked, problems


def warnings(graph: nx.MultiDiGraph) -> list[Problem]:
    """What may not do what its author meant, though the flow can run.

    A loop where several nodes take inputs from outside starts at the one the rule in
    ``graphs.loops`` picks; unless a loop-back edge says where (``initial``), say which.

    >>> from graphs.document import load
    >>> edges = [("topic", "gen", "value", "topic"), ("topic", "grade", "value", "topic"),
    ...          ("gen", "grade", "text", "joke"), ("grade", "gen", "text", "feedback")]
    >>> G = load({"graph": {"name": "w"}, "nodes": [
    ...     {"id": n, "type": "template"} for n in ("topic", "gen", "grade")], "edges": [
    ...     {"source": s, "target": t, "source_port": sp, "target_port": tp}
    ...     for s, t, sp, tp in edges]})
    >>> [str(w) for w in warnings(G)]  # doctest: +NORMALIZE_WHITESPACE
    ["node 'gen': the loop gen -> grade has 2 nodes that take inputs from outside it
    (gen, grade); it starts at 'gen', the one not waiting for another's output: set
    'initial' on a loop-back edge to say where it starts"]
    """
    found = []
    for members in nx.strongly_connected_components(graph):
        if len(members) < 2:
            continue
        inner = [(s, t, d) for s, t, d in graph.in_edges(members, data=True) if s in members]
        if any("initial" in d or d.get("append") for _, _, d in inner):
            continue
        outside_ports: dict[str, set[str]] = defaultdict(set)
        for source, target, data in graph.in_edges(members, data=True):
            if source not in members:
                outside_ports[target].add(data["target_port"])
        if len(outside_ports) < 2:
            continue
        waiting_on = {
            node: {
                s for s, t, d in inner if t == node and d["target_port"] not in outside_ports[node]
            }
            for node in outside_ports
        }
        order = loop_order(graph, members)
        start = pick_entry(order, waiting_on)
        names = ", ".join(sorted(outside_ports))
        found.append(
            Problem(
                f"the loop {' -> '.join(order)} has {len(outside_ports)} nodes that take "
                f"inputs from outside it ({names}); it starts at {start!r}, the one not "
                "waiting for another's output: set 'initial' on a loop-back edge to say "
                "where it starts",
                node=start,
            )
        )
    return found


def _check_node(
    node_id: str, data: dict[str, Any], services: Services
) -> tuple[CheckedNode | None, list[Problem]]:
    type_name = data.get("type")
    node_type = services.registry.get(type_name) if isinstance(type_name, str) else None
    if node_type is None:
        known = ", ".join(sorted(services.registry))
        shown = repr(type_name)[:60]
        return None, [Problem(f"unknown node type {shown} (known types: {known})", node=node_id)]
    try:
        config = node_type.Config.model_validate(data.get("config") or {})
    except ValidationError as exc:
        return None, [Problem(config_message(err), node=node_id) for err in exc.errors()]
    problems = []
    for field, source in node_type.templates(config).items():
        try:
            templating.check(source)
        except templating.TemplateProblem as exc:
            problems.append(Problem(f"{field} {exc}", node=node_id))
    problems += [Problem(p.message, node=node_id) for p in node_type.problems(config, services)]
    if problems:
        return None, problems
    ports = node_type.ports(config, services)
    out_ports = ports.outputs
    if config.on_error == "continue":
        out_ports |= {"error"}
    return CheckedNode(node_type, config, ports.inputs, out_ports, ports.optional), []


def config_message(error: Mapping[str, Any]) -> str:
    """One pydantic error of a node config, worded as the engine reports it."""
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown config key {where!r}"
    if error["type"] == "missing":
        return f"config.{where} is required"
    if error["type"] == "string_pattern_mismatch" and error.get("input") == "":
        return f"config.{where} is required"
    if error["type"] == "string_pattern_mismatch":
        return f"config.{where}: {plain_pattern(error.get('ctx', {}).get('pattern', ''))}"
    message = error["msg"].removeprefix("Value error, ")
    return f"config.{where}: {message}" if where else f"config: {message}"


# Patterns of the configs' identifiers, in words (what a form shows under the field).
_PATTERN_WORDS = {
    r"^[A-Za-z_][A-Za-z0-9_]*$": (
        "use only letters (A-Z, a-z), digits (0-9) and _, not starting with a digit"
    ),
    r"^[A-Za-z0-9][A-Za-z0-9_-]{0,58}$": (
        "use only letters, digits, _ and -, starting with a letter or digit (at most 59)"
    ),
}


def plain_pattern(pattern: str) -> str:
    """What a value must look like, in words, for a config field's ``pattern``.

    >>> plain_pattern(r"^[A-Za-z_][A-Za-z0-9_]*$")
    'use only letters (A-Z, a-z), digits (0-9) and _, not starting with a digit'
    """
    default = f"has characters it does not allow (it must match {pattern})"
    return _PATTERN_WORDS.get(pattern, default)


def _check_edges(graph: nx.MultiDiGraph, checked: dict[str, CheckedNode]) -> list[Problem]:
    problems = []
    connected: dict[str, set[str]] = defaultdict(set)
    for source, target, key, data in graph.edges(keys=True, data=True):
        where = (source, target, key)
        source_port, target_port = data["source_port"], data["target_port"]
        connected[target].add(target_port)
        if (src := checked.get(source)) and source_port not in src.out_ports:
            kind = "route" if src.type.name == "router" else "output port"
            problems.append(
                Problem(
                    f"{source!r} has no {kind} {source_port!r} "
                    f"(it has: {', '.join(sorted(src.out_ports)) or 'none'})",
                    edge=where,
                )
            )
        if (
            (dst := checked.get(target))
            and dst.in_ports is not None
            and target_port not in dst.in_ports
        ):
            problems.append(
                Problem(
                    f"{target!r} has no input port {target_port!r} "
                    f"(it reads: {', '.join(sorted(dst.in_ports)) or 'nothing'})",
                    edge=where,
                )
            )
    for node_id, node in checked.items():
        ports = node.in_ports
        if node.type.name == "merge" and not connected[node_id]:
            problems.append(Problem("a merge needs at least one incoming edge", node=node_id))
        for port in sorted((ports or frozenset()) - connected[node_id] - node.optional):
            if port in _template_variables(node):
                message = (
                    f"template variable {{{{ {port} }}}} has no port: connect an edge into {port!r}"
                )
            elif node.type.name == "subflow":
                message = f"the flow's input {port!r} has no default: connect an edge into it"
            elif node.type.name == "map" and port != "items":
                message = (
                    f"the inline flow's input {port!r} has no value: connect an edge into "
                    f"the map's port {port!r} (every item gets it)"
                )
            else:
                message = f"input port {port!r} is not connected"
            problems.append(Problem(message, node=node_id))
    return problems


def _template_variables(node: CheckedNode) -> frozenset[str]:
    return template_ports(node.type.templates(node.config))


def _check_names(graph: nx.MultiDiGraph, checked: dict[str, CheckedNode]) -> list[Problem]:
    problems = []
    seen: dict[tuple[str, str], str] = {}
    for node_id, node in checked.items():
        kind = node.type.name
        if kind not in ("input", "output"):
            continue
        if kind == "input" and graph.in_degree(node_id):
            problems.append(Problem("an input node takes no incoming edges", node=node_id))
        name = node.config.name  # type: ignore[attr-defined]
        if (kind, name) in seen:
            problems.append(
                Problem(f"{kind} name {name!r} is also used by {seen[kind, name]!r}", node=node_id)
            )
        seen.setdefault((kind, name), node_id)
    return problems


APPEND_NEEDS_LIST = "'append' needs 'initial' to be a list (leave it out for [])"
NOT_ROUND_A_LOOP = (
    "'initial' and 'append' are for an edge that goes round a loop; this one is on none"
)


def goes_round_a_loop(graph: nx.MultiDiGraph, source: str, target: str) -> bool:
    """Whether an edge from ``source`` to ``target`` lies on a loop: the only edges whose
    ``initial`` and ``append`` mean anything (``graphs.schedule``, "Loops").

    >>> ring = nx.MultiDiGraph([("a", "b"), ("b", "a"), ("b", "c")])
    >>> goes_round_a_loop(ring, "b", "a"), goes_round_a_loop(ring, "b", "c")
    (True, False)
    """
    return source == target or (
        graph.has_node(source) and graph.has_node(target) and nx.has_path(graph, target, source)
    )


def _check_loop_edges(graph: nx.MultiDiGraph) -> list[Problem]:
    """``initial`` and ``append`` belong on an edge that goes round a loop, alone on its port."""
    component: dict[str, int] = {}
    for index, members in enumerate(nx.strongly_connected_components(graph)):
        component.update(dict.fromkeys(members, index))
    problems = []
    for source, target, key, data in graph.edges(keys=True, data=True):
        if "initial" not in data and not data.get("append"):
            continue
        where = (source, target, key)
        port = data["target_port"]
        if component[source] != component[target]:
            problems.append(Problem(NOT_ROUND_A_LOOP, edge=where))
        others = [s for s, _, d in graph.in_edges(target, data=True) if d["target_port"] == port]
        if len(others) > 1:
            problems.append(
                Problem(
                    f"an edge with 'initial' or 'append' must be the only edge into "
                    f"{target!r} port {port!r}",
                    edge=where,
                )
            )
        if data.get("append") and not isinstance(data.get("initial", []), list):
            problems.append(Problem(APPEND_NEEDS_LIST, edge=where))
    return problems


def _check_cycles(graph: nx.MultiDiGraph, checked: dict[str, CheckedNode]) -> list[Problem]:
    """A cycle is legal when some node on it sets max_iterations.

    Removing the guarded nodes must leave no cycle, which is linear to check,
    unlike listing every simple cycle (exponential in the worst case).
    """
    guarded = [n for n, c in checked.items() if c.config.max_iterations is not None]
    # A view of a MultiDiGraph is one (the stubs say Graph).
    rest = cast(nx.MultiDiGraph, nx.restricted_view(graph, guarded, []))
    problems = []
    for component in nx.strongly_connected_components(rest):
        first = min(component)
        if len(component) == 1 and not rest.has_edge(first, first):
            continue
        cycle = nx.find_cycle(rest.subgraph(component), source=first)
        path = " -> ".join([cycle[0][0], *(edge[1] for edge in cycle)])
        problems.append(
            Problem(f"unguarded cycle {path}: set max_iterations on one of its nodes", node=first)
        )
    return problems
