"""Node keys: the readable name a node goes by in its flow, and renaming one.

A node's key is its document ``id``: the name its edges use, a merge names its port after
(so the merge's ``value`` reads ``{"summary": ..., "critique": ...}``) and prompts then
read (``{{ value.summary }}``). It has the identifier charset of ``graphs.document``
(a letter or _, then letters, digits, _ or -; at most 100 characters) and is unique in the
flow. The editor derives it from the node's label (``key_from``) until it is typed.

Renaming rewrites what uses the name inside the document, so the flow means what it did:

>>> doc = {
...     "graph": {"name": "review"},
...     "nodes": [
...         {"id": "llm1", "type": "llm", "config": {"prompt": "Sum up {{ text }}"}},
...         {"id": "both", "type": "merge", "config": {}},
...         {"id": "say", "type": "template", "config": {"template": "{{ all.llm1 }}!"}},
...     ],
...     "edges": [
...         {"source": "llm1", "target": "both", "source_port": "text", "target_port": "llm1"},
...         {"source": "both", "target": "say", "source_port": "value", "target_port": "all"},
...     ],
... }
>>> out = rename_node(doc, "llm1", "summary")
>>> [n["id"] for n in out["nodes"]], out["edges"][0]["target_port"]
(['summary', 'both', 'say'], 'summary')
>>> out["nodes"][2]["config"]["template"]
'{{ all.summary }}!'
>>> key_from("Summarise the text!", {"summarise_the_text"})
'summarise_the_text_2'
"""

from __future__ import annotations

import copy
import re
import unicodedata
from collections.abc import Collection
from typing import Any

from graphs.document import IDENTIFIER_RULE, MAX_ID_CHARS, is_identifier
from graphs.errors import FlowInvalid, Problem

# Room kept for a "_12" suffix when a derived key is taken.
_STEM_CHARS = MAX_ID_CHARS - 6


def key_from(text: str, taken: Collection[str], fallback: str = "node") -> str:
    """A free key made from a label: lower case, runs of other characters as one ``_``.

    >>> key_from("Write the Draft", set()), key_from("2nd pass", set()), key_from("☃", set())
    ('write_the_draft', '_2nd_pass', 'node')
    >>> key_from("Café crème", {"cafe_creme", "cafe_creme_2"})
    'cafe_creme_3'
    """
    # Accents go (é -> e) rather than becoming underscores: keys stay readable.
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")[:_STEM_CHARS].rstrip("_")
    if not stem:
        stem = fallback if is_identifier(fallback) else "node"
    if stem[0].isdigit():
        stem = "_" + stem
    return unique_key(stem, taken)


def unique_key(wanted: str, taken: Collection[str]) -> str:
    """``wanted``, or ``wanted_2``, ``wanted_3``, ... whichever is free."""
    key = wanted
    n = 2
    while key in taken:
        key = f"{wanted}_{n}"
        n += 1
    return key


def key_problem(key: Any, taken: Collection[str]) -> str | None:
    """Why ``key`` cannot name a node beside the ``taken`` ones, or None when it can.

    >>> key_problem("summary", {"draft"}) is None
    True
    >>> key_problem("draft", {"draft"})
    'another node already has the key draft'
    >>> key_problem("my key", set())
    'a key is an identifier: a letter or _, then letters, digits, _ or -, at most 100 characters'
    """
    if not is_identifier(key):
        return "a key is " + IDENTIFIER_RULE
    if key in taken:
        return f"another node already has the key {key}"
    return None


def rename_node(doc: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """A copy of the document with node ``old`` called ``new``, and what used the name.

    Its edges follow, and the groups it belongs to; a port of a merge named after it
    (``old``) becomes ``new``, and so do references to that port after the merge
    (``{{ value.old }}``). FlowInvalid when ``old`` is not a node of the document or ``new``
    is not a free key (notes and groups share the nodes' ids).
    """
    out = copy.deepcopy(doc)
    nodes = _nodes(out, old)
    annotations = [
        a for key in ("notes", "groups") for a in out.get(key) or [] if isinstance(a, dict)
    ]
    taken = {str(n.get("id")) for n in [*nodes, *annotations] if n.get("id") != old}
    if (problem := key_problem(new, taken)) is not None:
        raise FlowInvalid([Problem(problem, node=old)])
    if new == old:
        return out
    for node in nodes:
        if node.get("id") == old:
            node["id"] = new
    ported: list[tuple[str, str]] = []  # (merge-like node, port) renamed old -> new
    for edge in _edges(out):
        if edge.get("source") == old:
            edge["source"] = new
            target = _node(nodes, edge.get("target"))
            if edge.get("target_port") == old and target is not None and takes_any_port(target):
                edge["target_port"] = new
                ported.append((target["id"], old))
        if edge.get("target") == old:
            edge["target"] = new
    for group in out.get("groups") or []:
        if isinstance(group, dict) and isinstance(group.get("nodes"), list):
            group["nodes"] = [new if member == old else member for member in group["nodes"]]
    for node_id, _port in set(ported):
        _rewrite_references(out, node_id, old, new)
    return out


def rename_port(doc: dict[str, Any], node_id: str, old: str, new: str) -> dict[str, Any]:
    """A copy of the document with input port ``old`` of a merge (a node that takes any
    port name) called ``new``: its edges and the references after it follow."""
    out = copy.deepcopy(doc)
    nodes = _nodes(out, node_id)
    node = _node(nodes, node_id)
    if node is None or not takes_any_port(node):
        raise FlowInvalid([Problem("only a merge's ports can be renamed", node=node_id)])
    if not is_identifier(new):
        raise FlowInvalid([Problem("a port name is " + IDENTIFIER_RULE, node=node_id)])
    edges = _edges(out)
    used = {e.get("target_port") for e in edges if e.get("target") == node_id}
    if old not in used:
        raise FlowInvalid([Problem(f"it has no port {old}", node=node_id)])
    if new != old and new in used:
        raise FlowInvalid([Problem(f"it already has a port {new}", node=node_id)])
    for edge in edges:
        if edge.get("target") == node_id and edge.get("target_port") == old:
            edge["target_port"] = new
    if new != old:
        _rewrite_references(out, node_id, old, new)
    return out


def _nodes(doc: Any, node_id: str) -> list[dict[str, Any]]:
    nodes = doc.get("nodes") if isinstance(doc, dict) else None
    if not isinstance(nodes, list) or _node(nodes, node_id) is None:
        raise FlowInvalid([Problem(f"the flow has no node {node_id!r}")])
    return [n for n in nodes if isinstance(n, dict)]


def _edges(doc: dict[str, Any]) -> list[dict[str, Any]]:
    edges = doc.get("edges", [])
    return [e for e in edges if isinstance(e, dict)] if isinstance(edges, list) else []


def _node(nodes: list[Any], node_id: Any) -> dict[str, Any] | None:
    for node in nodes:
        if isinstance(node, dict) and node.get("id") == node_id:
            return node
    return None


def takes_any_port(node: dict[str, Any]) -> bool:
    """Whether the node takes inputs of any name (a merge), as its type says."""
    from graphs.nodes import NODE_TYPES

    node_type = NODE_TYPES.get(str(node.get("type")))
    if node_type is None:
        return False
    try:
        return node_type.input_ports(node_type.Config.model_construct()) is None
    except Exception:  # a type that needs a real config to tell takes named ports
        return False


def _rewrite_references(doc: dict[str, Any], merge_id: str, old: str, new: str) -> None:
    """After a merge, ``var.old`` / ``var["old"]`` become ``new`` in the configs of the nodes
    it feeds, where ``var`` is the port it feeds them on."""
    nodes = doc["nodes"]
    for edge in _edges(doc):
        if edge.get("source") != merge_id:
            continue
        target = _node(nodes, edge.get("target"))
        variable = edge.get("target_port")
        if target is None or not is_identifier(variable) or "config" not in target:
            continue
        var = re.escape(variable)
        patterns = [
            (re.compile(rf"(?<![\w.]){var}\.{re.escape(old)}(?![\w-])"), f"{variable}.{new}"),
            (
                re.compile(rf"(?<![\w.]){var}\[(['\"]){re.escape(old)}\1\]"),
                rf"{variable}[\g<1>{new}\g<1>]",
            ),
        ]
        target["config"] = _replace_strings(target["config"], patterns)


def _replace_strings(value: Any, patterns: list[tuple[re.Pattern[str], str]]) -> Any:
    if isinstance(value, str):
        for pattern, replacement in patterns:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, dict):
        return {k: _replace_strings(v, patterns) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_strings(v, patterns) for v in value]
    return value
