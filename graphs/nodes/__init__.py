"""The node types, by name. One module each; ``NODE_TYPES`` is the only registry.

A type's module is imported the first time the type is looked up, not with this package:
each defines pydantic models, and some pull in whole libraries (the agent's tools, the
http node's client), so a process that checks or runs a flow of three node types (the
command line) pays for those three. Iterating the registry (a palette of every type)
loads them all.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Mapping

from graphs.nodes.base import CommonConfig, NodeContext, NodeType, Services

# name -> (module, class); the order is the palette's.
_HOMES: dict[str, tuple[str, str]] = {
    "input": ("graphs.nodes.io", "InputNode"),
    "output": ("graphs.nodes.io", "OutputNode"),
    "template": ("graphs.nodes.template", "TemplateNode"),
    "llm": ("graphs.nodes.llm", "LLMNode"),
    "router": ("graphs.nodes.router", "RouterNode"),
    "merge": ("graphs.nodes.merge", "MergeNode"),
    "map": ("graphs.nodes.map", "MapNode"),
    "agent": ("graphs.nodes.agent", "AgentNode"),
    "parse": ("graphs.nodes.parse", "ParseNode"),
    "http": ("graphs.nodes.http", "HttpNode"),
    "subflow": ("graphs.nodes.subflow", "SubflowNode"),
    "code": ("graphs.nodes.code", "CodeNode"),
    "approval": ("graphs.nodes.approval", "ApprovalNode"),
}


class NodeRegistry(Mapping[str, NodeType]):
    """A read-only mapping of type name to node type, each built on first lookup.

    >>> registry = NodeRegistry({"merge": ("graphs.nodes.merge", "MergeNode")})
    >>> "merge" in registry, "nope" in registry, list(registry)
    (True, False, ['merge'])
    >>> registry["merge"] is registry["merge"], registry.get("nope")
    (True, None)
    """

    def __init__(self, homes: Mapping[str, tuple[str, str]]) -> None:
        self._homes = dict(homes)
        self._types: dict[str, NodeType] = {}
        # Web app threads may look up a type for the first time together: one instance each.
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> NodeType:
        node_type = self._types.get(name)
        if node_type is not None:
            return node_type
        module, attribute = self._homes[name]  # KeyError: no such type
        cls = getattr(importlib.import_module(module), attribute)
        with self._lock:
            return self._types.setdefault(name, cls())

    def __contains__(self, name: object) -> bool:
        return name in self._homes

    def __iter__(self) -> Iterator[str]:
        return iter(self._homes)

    def __len__(self) -> int:
        return len(self._homes)

    def __repr__(self) -> str:
        return f"NodeRegistry({list(self._homes)})"


NODE_TYPES: Mapping[str, NodeType] = NodeRegistry(_HOMES)

__all__ = ["NODE_TYPES", "CommonConfig", "NodeContext", "NodeRegistry", "NodeType", "Services"]
