"""What changed between two flow documents: nodes and edges added, removed, changed.

Nodes are matched by id, edges by ``(source, source_port, target, target_port)``; an edge
in both is changed when its loop settings (``initial``, ``append``) differ.
A node is changed when its type, label or a top-level config key differs; moving it
on the canvas is reported apart (``moved``) and does not count as a change unless
asked (``positions=True``), because it changes nothing about what the flow does.

>>> a = {
...     "graph": {"name": "greet"},
...     "nodes": [
...         {"id": "q", "type": "input", "config": {"name": "q"}, "position": {"x": 0, "y": 0}},
...         {"id": "say", "type": "template", "config": {"template": "Hi {{ q }}"}},
...         {"id": "out", "type": "output", "config": {"name": "answer"}},
...     ],
...     "edges": [
...         {"source": "q", "target": "say", "source_port": "value", "target_port": "q"},
...         {"source": "say", "target": "out", "source_port": "text", "target_port": "value"},
...     ],
... }
>>> b = {
...     "graph": {"name": "greet"},
...     "nodes": [
...         {"id": "q", "type": "input", "config": {"name": "q"}, "position": {"x": 40, "y": 0}},
...         {"id": "say", "type": "llm", "config": {"prompt": "Greet {{ q }}"}, "label": "Say"},
...         {"id": "out", "type": "output", "config": {"name": "answer"}},
...         {"id": "log", "type": "output", "config": {"name": "log"}},
...     ],
...     "edges": [
...         {"source": "q", "target": "say", "source_port": "value", "target_port": "q"},
...         {"source": "say", "target": "out", "source_port": "text", "target_port": "value"},
...         {"source": "say", "target": "log", "source_port": "text", "target_port": "value"},
...     ],
... }
>>> diff = diff_graphs(a, b)
>>> [node.id for node in diff.added], [node.id for node in diff.removed]
(['log'], [])
>>> [(node.id, node.keys) for node in diff.changed]
[('say', ('type', 'label', 'config.template', 'config.prompt'))]
>>> [node.id for node in diff.moved]
['q']
>>> diff.edges_added
(Edge(source='say', source_port='text', target='log', target_port='value'),)
>>> diff.summary()
'1 node added, 1 changed, 1 edge added; 1 node moved'
>>> diff_graphs(a, a).is_empty, diff_graphs(a, a).summary()
(True, 'no changes')

A move alone leaves the diff empty unless positions count:

>>> moved = {**a, "nodes": [b["nodes"][0], *a["nodes"][1:]]}
>>> diff_graphs(a, moved).is_empty, diff_graphs(a, moved, positions=True).is_empty
(True, False)
>>> diff_graphs(a, moved, positions=True).changed[0].keys
('position',)
>>> diff_graphs(a, b).as_dict()["nodes"]["changed"][0]["changes"][0]
{'key': 'type', 'kind': 'changed', 'before': 'template', 'after': 'llm'}

A loop-back edge that starts appending is changed, not removed and added again:

>>> looped = {**a, "edges": [{**a["edges"][0], "append": True}, a["edges"][1]]}
>>> [(c.edge.target, c.keys) for c in diff_graphs(a, looped).edges_changed]
[('say', ('append',))]
>>> diff_graphs(a, looped).summary()
'1 edge changed'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

ChangeKind = Literal["added", "removed", "changed"]
# A document key that was not there, told apart from one holding null.
_ABSENT: Any = object()


class Edge(NamedTuple):
    """An edge's identity: parallel edges with the same ends and ports are the same edge."""

    source: str
    source_port: str
    target: str
    target_port: str


@dataclass(frozen=True)
class KeyChange:
    """One key of a node (``type``, ``label``, ``position``, ``config.<name>``) or of the
    flow (``name``, ``description``); ``before`` is None when added, ``after`` when removed."""

    key: str
    kind: ChangeKind
    before: Any = None
    after: Any = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "kind": self.kind}
        if self.kind != "added":
            out["before"] = self.before
        if self.kind != "removed":
            out["after"] = self.after
        return out


@dataclass(frozen=True)
class NodeRef:
    """A node added or removed, with what a list needs to name it."""

    id: str
    type: str
    label: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "label": self.label}


@dataclass(frozen=True)
class NodeChange:
    """A node in both documents whose type, label or config (or position) differs."""

    id: str
    type: str
    label: str
    changes: tuple[KeyChange, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(change.key for change in self.changes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "label": self.label,
            "changes": [change.as_dict() for change in self.changes],
        }


@dataclass(frozen=True)
class EdgeChange:
    """An edge in both documents whose settings (``initial``, ``append``) differ."""

    edge: Edge
    changes: tuple[KeyChange, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(change.key for change in self.changes)

    def as_dict(self) -> dict[str, Any]:
        return {**self.edge._asdict(), "changes": [change.as_dict() for change in self.changes]}


@dataclass(frozen=True)
class NodeMove:
    id: str
    before: Mapping[str, float] | None
    after: Mapping[str, float] | None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class GraphDiff:
    """The difference from document ``a`` to document ``b``, each list in document order."""

    added: tuple[NodeRef, ...] = ()
    removed: tuple[NodeRef, ...] = ()
    changed: tuple[NodeChange, ...] = ()
    moved: tuple[NodeMove, ...] = ()
    edges_added: tuple[Edge, ...] = ()
    edges_removed: tuple[Edge, ...] = ()
    edges_changed: tuple[EdgeChange, ...] = ()
    # The flow's own attributes (graph.name, graph.description).
    graph: tuple[KeyChange, ...] = ()

    @property
    def is_empty(self) -> bool:
        """No node or edge added, removed or changed, and the flow's name is the same.

        Moves are not changes (see ``moved``) unless the diff was made with positions=True.
        """
        return not (
            self.added
            or self.removed
            or self.changed
            or self.edges_added
            or self.edges_removed
            or self.edges_changed
            or self.graph
        )

    def summary(self) -> str:
        """One line for people, e.g. ``2 nodes added, 1 changed, 1 edge removed``."""
        nodes = _counts(
            ("added", len(self.added)),
            ("removed", len(self.removed)),
            ("changed", len(self.changed)),
        )
        edges = _counts(
            ("added", len(self.edges_added)),
            ("removed", len(self.edges_removed)),
            ("changed", len(self.edges_changed)),
        )
        parts = []
        if nodes:
            parts.append(_plural(nodes[0][1], "node") + " " + _join(nodes))
        if edges:
            parts.append(_plural(edges[0][1], "edge") + " " + _join(edges))
        if self.graph:
            parts.append("flow " + " and ".join(change.key for change in self.graph) + " changed")
        text = ", ".join(parts) or "no changes"
        if self.moved:
            text += "; " + _plural(len(self.moved), "node") + " moved"
        return text

    def as_dict(self) -> dict[str, Any]:
        """The diff as plain JSON-ready data."""
        return {
            "is_empty": self.is_empty,
            "summary": self.summary(),
            "graph": [change.as_dict() for change in self.graph],
            "nodes": {
                "added": [node.as_dict() for node in self.added],
                "removed": [node.as_dict() for node in self.removed],
                "changed": [node.as_dict() for node in self.changed],
                "moved": [move.as_dict() for move in self.moved],
            },
            "edges": {
                "added": [edge._asdict() for edge in self.edges_added],
                "removed": [edge._asdict() for edge in self.edges_removed],
                "changed": [change.as_dict() for change in self.edges_changed],
            },
        }


def diff_graphs(
    a: Mapping[str, Any], b: Mapping[str, Any], *, positions: bool = False
) -> GraphDiff:
    """What changed from flow document ``a`` to flow document ``b``.

    Both are documents as stored (``graphs.document`` shape); they are read, not
    validated. ``positions=True`` also counts a move as a change of the node.
    """
    nodes_a = _nodes(a)
    nodes_b = _nodes(b)
    added = tuple(_ref(node) for node_id, node in nodes_b.items() if node_id not in nodes_a)
    removed = tuple(_ref(node) for node_id, node in nodes_a.items() if node_id not in nodes_b)
    changed = []
    moved = []
    for node_id, after in nodes_b.items():
        before = nodes_a.get(node_id)
        if before is None:
            continue
        changes = _node_changes(before, after)
        if before.get("position") != after.get("position"):
            moved.append(NodeMove(node_id, before.get("position"), after.get("position")))
            if positions:
                changes.append(
                    _key_change("position", before.get("position"), after.get("position"))
                )
        if changes:
            ref = _ref(after)
            changed.append(NodeChange(ref.id, ref.type, ref.label, tuple(changes)))
    edges_a = _edges(a)
    edges_b = _edges(b)
    return GraphDiff(
        added=added,
        removed=removed,
        changed=tuple(changed),
        moved=tuple(moved),
        edges_added=_more(edges_b, edges_a),
        edges_removed=_more(edges_a, edges_b),
        edges_changed=_edge_changes(a, b),
        graph=tuple(_mapping_changes(_attrs(a), _attrs(b))),
    )


def _nodes(doc: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {
        node["id"]: node
        for node in doc.get("nodes") or ()
        if isinstance(node, Mapping) and isinstance(node.get("id"), str)
    }


def _edges(doc: Mapping[str, Any]) -> list[Edge]:
    return [_edge(edge) for edge in _doc_edges(doc)]


# What an edge is beside its ends: the settings a diff compares.
_EDGE_ENDS = frozenset({"source", "target", "source_port", "target_port", "key"})


def _edge_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[EdgeChange, ...]:
    """Edges in both documents (paired in order, as ``_more`` counts them) whose settings
    differ, in ``b``'s order."""
    waiting: dict[Edge, list[Mapping[str, Any]]] = {}
    for edge in _doc_edges(a):
        waiting.setdefault(_edge(edge), []).append(edge)
    out = []
    for edge in _doc_edges(b):
        key = _edge(edge)
        if not waiting.get(key):
            continue
        before = waiting[key].pop(0)
        changes = _mapping_changes(_settings(before), _settings(edge))
        if changes:
            out.append(EdgeChange(key, tuple(changes)))
    return tuple(out)


def _doc_edges(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [edge for edge in doc.get("edges") or () if isinstance(edge, Mapping)]


def _edge(edge: Mapping[str, Any]) -> Edge:
    return Edge(
        str(edge.get("source")),
        str(edge.get("source_port")),
        str(edge.get("target")),
        str(edge.get("target_port")),
    )


def _settings(edge: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in edge.items() if k not in _EDGE_ENDS}


def _attrs(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    attrs = doc.get("graph")
    return attrs if isinstance(attrs, Mapping) else {}


def _more(these: list[Edge], than: list[Edge]) -> tuple[Edge, ...]:
    """The edges of `these` not in `than`, in order; a doubled edge counts twice."""
    spare = Counter(than)
    out = []
    for edge in these:
        if spare[edge]:
            spare[edge] -= 1
        else:
            out.append(edge)
    return tuple(out)


def _ref(node: Mapping[str, Any]) -> NodeRef:
    return NodeRef(str(node["id"]), str(node.get("type") or ""), str(node.get("label") or ""))


def _node_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[KeyChange]:
    changes = []
    if before.get("type") != after.get("type"):
        changes.append(_key_change("type", before.get("type"), after.get("type")))
    # An absent label and an empty one draw the same.
    if (before.get("label") or "") != (after.get("label") or ""):
        changes.append(
            _key_change("label", before.get("label") or _ABSENT, after.get("label") or _ABSENT)
        )
    changes += _mapping_changes(
        before.get("config") or {}, after.get("config") or {}, prefix="config."
    )
    return changes


def _mapping_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = ""
) -> list[KeyChange]:
    keys = list(before) + [key for key in after if key not in before]
    return [
        _key_change(prefix + str(key), before.get(key, _ABSENT), after.get(key, _ABSENT))
        for key in keys
        if not _same(before.get(key, _ABSENT), after.get(key, _ABSENT))
    ]


def _same(x: Any, y: Any) -> bool:
    """Equal as JSON values: 1 and 1.0 are one number, but true is not 1 and "1" is not 1."""
    if x is _ABSENT or y is _ABSENT:
        return x is y
    if isinstance(x, bool) or isinstance(y, bool):
        return x is y
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_same(x[key], y[key]) for key in x)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_same(i, j) for i, j in zip(x, y, strict=True))
    if isinstance(x, int | float) and isinstance(y, int | float):
        return x == y
    return type(x) is type(y) and x == y


def _key_change(key: str, before: Any, after: Any) -> KeyChange:
    if before is _ABSENT:
        return KeyChange(key, "added", after=after)
    if after is _ABSENT:
        return KeyChange(key, "removed", before=before)
    return KeyChange(key, "changed", before, after)


def _counts(*pairs: tuple[str, int]) -> list[tuple[str, int]]:
    return [(word, n) for word, n in pairs if n]


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _join(counts: Iterable[tuple[str, int]]) -> str:
    """``added`` first with its noun already said, then ``1 changed``."""
    words = []
    for index, (word, n) in enumerate(counts):
        words.append(word if index == 0 else f"{n} {word}")
    return ", ".join(words)
