"""The flow document: ``networkx.node_link_data(G, edges="edges")`` JSON, and back.

>>> doc = {
...     "graph": {"name": "hello"},
...     "nodes": [
...         {"id": "q", "type": "input", "config": {"name": "q"}},
...         {"id": "out", "type": "output", "config": {"name": "answer"}},
...     ],
...     "edges": [{"source": "q", "target": "out", "source_port": "value", "target_port": "value"}],
... }
>>> G = load(doc)
>>> G.graph["name"], sorted(G.nodes), G.number_of_edges()
('hello', ['out', 'q'], 1)
>>> dump(G)["edges"][0]["target_port"]
'value'

Loading checks the document's shape before networkx sees it, because
``node_link_graph`` would silently merge duplicate ids and invent nodes for
dangling edges.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any, TypeGuard, cast

import networkx as nx

from graphs import notes as flow_notes
from graphs.errors import FlowInvalid, Problem

MAX_DOCUMENT_BYTES = 20_000_000
MAX_NODES = 10_000
MAX_EDGES = 50_000
MAX_ID_CHARS = 100
# Node ids, port names and route names become parts of URLs, HTML attributes, CSS selectors
# and template variables, so they are identifiers: a letter or underscore, then letters,
# digits, underscores or hyphens. Nothing in that set can change a URL's path ("../"),
# close an attribute or need escaping in a selector.
IDENTIFIER = re.compile(rf"[A-Za-z_][A-Za-z0-9_-]{{0,{MAX_ID_CHARS - 1}}}")
IDENTIFIER_RULE = (
    f"an identifier: a letter or _, then letters, digits, _ or -, at most {MAX_ID_CHARS} characters"
)
MAX_DEPTH = 64
NODE_KEYS = frozenset({"id", "type", "config", "position", "label"})
# ``initial`` and ``append`` say what a loop-back port holds (graphs.schedule, "Loops").
EDGE_KEYS = frozenset(
    {"source", "target", "key", "source_port", "target_port", "initial", "append"}
)
DOCUMENT_KEYS = frozenset({"directed", "multigraph", "graph", "nodes", "edges", *flow_notes.KEYS})
# Notes and groups (graphs.notes) ride along in the loaded graph under this graph
# attribute, which ``dump`` puts back at the top of the document; no node type reads it.
ANNOTATIONS = "switchyard:notes"


def is_identifier(value: Any) -> TypeGuard[str]:
    """Whether ``value`` may name a node, a port or a route.

    >>> is_identifier("summarise_2"), is_identifier("../teams/4/delete"), is_identifier("2x")
    (True, False, False)
    """
    return isinstance(value, str) and IDENTIFIER.fullmatch(value) is not None


def parse(text: str | bytes) -> dict[str, Any]:
    """Parse a flow document from JSON text, refusing what would hurt later."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise FlowInvalid(
            [Problem(f"the document is {len(text):,} bytes; the limit is {MAX_DOCUMENT_BYTES:,}")]
        )
    try:
        doc = json.loads(text)
    except RecursionError:
        raise FlowInvalid([Problem("the JSON is nested too deeply")]) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise FlowInvalid([Problem(f"not valid JSON: {exc}")]) from None
    if not isinstance(doc, dict):
        raise FlowInvalid([Problem("a flow document is a JSON object")])
    return doc


def load(doc: Any) -> nx.MultiDiGraph:
    """Build the flow graph from its document, or raise FlowInvalid listing every problem."""
    problems = _shape_problems(doc)
    if problems:
        raise FlowInvalid(problems)
    data = {**doc, "directed": True, "multigraph": True, "graph": dict(doc.get("graph", {}))}
    data["nodes"] = [{**n, "config": n.get("config", {})} for n in doc["nodes"]]
    data["edges"] = doc.get("edges", [])  # optional, as the shape check allows
    if notes := {key: doc[key] for key in flow_notes.KEYS if doc.get(key)}:
        data["graph"][ANNOTATIONS] = notes
    graph = nx.node_link_graph(data, edges="edges", directed=True, multigraph=True)
    # The stubs type node_link_graph as returning a Graph; directed and multigraph make it so.
    return cast(nx.MultiDiGraph, graph)


def dump(graph: nx.MultiDiGraph) -> dict[str, Any]:
    """The document form of a flow graph."""
    data = nx.node_link_data(graph, edges="edges")
    attrs = dict(data["graph"])
    notes = attrs.pop(ANNOTATIONS, {})
    return {**data, "graph": attrs, **notes}


def _shape_problems(doc: Any) -> list[Problem]:
    if not isinstance(doc, dict):
        return [Problem("a flow document is a JSON object")]
    problems: list[Problem] = []
    if (bad := _bad_value(doc)) is not None:
        return [Problem(bad)]
    if unknown := sorted(set(doc) - DOCUMENT_KEYS):
        problems.append(Problem(f"unknown top-level keys: {', '.join(map(repr, unknown))}"))
    if doc.get("directed", True) is not True or doc.get("multigraph", True) is not True:
        problems.append(Problem("a flow is a directed multigraph (directed and multigraph true)"))
    graph = doc.get("graph", {})
    if not isinstance(graph, dict):
        problems.append(Problem("'graph' must be an object with the flow's name"))
    elif not isinstance(graph.get("name"), str) or not graph["name"].strip():
        problems.append(Problem("the flow needs a name (graph.name)"))
    elif "description" in graph and not isinstance(graph["description"], str):
        problems.append(Problem("graph.description must be a string"))
    elif ANNOTATIONS in graph:
        problems.append(Problem(f"graph.{ANNOTATIONS} is reserved"))
    nodes, edges = doc.get("nodes"), doc.get("edges", [])
    if not isinstance(nodes, list):
        return [*problems, Problem("'nodes' must be a list")]
    if not isinstance(edges, list):
        return [*problems, Problem("'edges' must be a list")]
    if len(nodes) > MAX_NODES:
        return [*problems, Problem(f"{len(nodes):,} nodes; the limit is {MAX_NODES:,}")]
    if len(edges) > MAX_EDGES:
        return [*problems, Problem(f"{len(edges):,} edges; the limit is {MAX_EDGES:,}")]
    ids: set[str] = set()
    for index, node in enumerate(nodes):
        problems += _node_problems(index, node, ids)
    for index, edge in enumerate(edges):
        problems += _edge_problems(index, edge, ids)
    return problems + flow_notes.note_problems(doc, ids, is_identifier, IDENTIFIER_RULE)


def _node_problems(index: int, node: Any, ids: set[str]) -> list[Problem]:
    if not isinstance(node, dict):
        return [Problem(f"nodes[{index}] must be an object")]
    node_id = node.get("id")
    if not is_identifier(node_id):
        shown = repr(node_id)[:60]
        return [Problem(f"nodes[{index}] id {shown} must be {IDENTIFIER_RULE}")]
    if node_id in ids:
        return [Problem("duplicate node id", node=node_id)]
    ids.add(node_id)
    problems = []
    if unknown := sorted(set(node) - NODE_KEYS):
        problems.append(Problem(f"unknown keys {', '.join(map(repr, unknown))}", node=node_id))
    if not isinstance(node.get("type"), str):
        problems.append(Problem("needs a 'type'", node=node_id))
    if not isinstance(node.get("config", {}), dict):
        problems.append(Problem("'config' must be an object", node=node_id))
    position = node.get("position")
    if position is not None and not (
        isinstance(position, dict)
        and set(position) == {"x", "y"}
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in position.values())
    ):
        problems.append(Problem('\'position\' must be {"x": number, "y": number}', node=node_id))
    if not isinstance(node.get("label", ""), str):
        problems.append(Problem("'label' must be a string", node=node_id))
    return problems


def _edge_problems(index: int, edge: Any, ids: set[str]) -> list[Problem]:
    if not isinstance(edge, dict):
        return [Problem(f"edges[{index}] must be an object")]
    source, target = edge.get("source"), edge.get("target")
    where = (str(source), str(target), edge.get("key", index))
    problems = []
    if unknown := sorted(set(edge) - EDGE_KEYS):
        problems.append(Problem(f"unknown keys {', '.join(map(repr, unknown))}", edge=where))
    for end, name in (("source", source), ("target", target)):
        if not isinstance(name, str) or name not in ids:
            problems.append(
                Problem(f"dangling edge: {end} node {name!r} does not exist", edge=where)
            )
    for port in ("source_port", "target_port"):
        value = edge.get(port)
        if not is_identifier(value):
            shown = repr(value)[:60]
            problems.append(Problem(f"'{port}' {shown} must be {IDENTIFIER_RULE}", edge=where))
    if not isinstance(edge.get("append", False), bool):
        problems.append(Problem("'append' must be true or false", edge=where))
    return problems


def _bad_value(value: Any, path: str = "the document", depth: int = 0) -> str | None:
    """What is wrong with the first value that later stages could not handle, if any."""
    if depth > MAX_DEPTH:
        return f"{path} is nested more than {MAX_DEPTH} levels deep"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{path} holds a lone surrogate, which is not valid Unicode text"
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path} is {value}, which is not a number JSON can hold"
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and (bad := _bad_value(key, path, depth + 1)):
            return bad
        if bad := _bad_value(item, f"{path}[{key!r}]", depth + 1):
            return bad
    return None
