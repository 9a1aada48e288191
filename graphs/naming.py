"""How messages name a node: the name its author gave it, with its key when they differ.

Run errors are read by people who built the flow on the canvas, where a node goes by
its label (an input or an output by its name); the key alone (``llm3``) means little
to them. The key stays beside the label because two nodes may share a label, and the
key is what the API and the event log use. The editor's problem list says the same
(``static/js/canvas/keys.js``, ``nameWithKey``).

>>> node_name("llm3", {"label": "Summarise"})
'"Summarise" (llm3)'
>>> node_name("llm3", {})
"'llm3'"
>>> node_name("summary", {"label": "summary"})
"'summary'"
>>> node_name("in1", {"type": "input", "config": {"name": "question"}})
'"question" (in1)'
>>> problem_text(Problem("boom", node="llm3"), {"llm3": '"Summarise" (llm3)'})
'node "Summarise" (llm3): boom'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import networkx as nx

from graphs.errors import Problem

# Node types that go by their run input or output name when they have no label.
_NAMED = frozenset({"input", "output"})


def display_name(node_id: str, data: Mapping[str, Any]) -> str:
    """What the canvas calls a node: its label, else an input's or output's name, else its key."""
    label = data.get("label")
    if isinstance(label, str) and label.strip():
        return label
    config = data.get("config")
    if data.get("type") in _NAMED and isinstance(config, Mapping):
        name = config.get("name")
        if isinstance(name, str) and name:
            return name
    return node_id


def node_name(node_id: str, data: Mapping[str, Any]) -> str:
    """``"Label" (key)`` when the node's display name is not its key, else ``'key'``."""
    name = display_name(node_id, data)
    if name == node_id:
        return repr(node_id)
    return f"{json.dumps(name, ensure_ascii=False)} ({node_id})"


def node_names(graph: nx.MultiDiGraph) -> dict[str, str]:
    """``node_name`` of every node of ``graph``."""
    return {node_id: node_name(node_id, data) for node_id, data in graph.nodes(data=True)}


def problem_text(problem: Problem, names: Mapping[str, str]) -> str:
    """``str(problem)``, naming its node or its edge's ends as ``names`` (``node_names``) do."""

    def named(node: str) -> str:
        return names.get(node, repr(node))

    if problem.node is not None:
        return f"node {named(problem.node)}: {problem.message}"
    if problem.edge is not None:
        source, target, key = problem.edge
        return f"edge {named(source)} -> {named(target)} ({key}): {problem.message}"
    return problem.message
