"""Switchyard's engine: flows are networkx graphs, run by a small async executor.

Pure Python: it never imports Django. The public API:

- ``load`` / ``dump`` / ``parse``: the flow document <-> ``networkx.MultiDiGraph``
- ``validate``: every problem of a flow, each naming its node or edge
- ``compile_flow``: validate once, then ``await flow.run(inputs, sink)``

  These two take the ``Services`` to use (model, tools, node types) and default them
  here, from ``graphs.settings``: the modules that do the work (``graphs.validation``,
  ``graphs.compile``) take them from the caller, so that they sit below the registry of
  node types, which the ``map`` node's inline flow is checked and compiled against.
- ``graphs.schedule``: a run's scheduling as a state machine over JSON-safe state, stepped
  by the executor here and by any driver that runs nodes elsewhere (``graphs.runner``)
- ``RunOptions`` / ``Recorded``: run again reusing recorded outputs, edited inputs, a cache
- ``graphs.replan``: which recorded outputs a re-run from a node or a resume may reuse
- ``NODE_TYPES``: the registry of node types

The names above are imported on first use: a process that needs one small module (the
sandbox's worker imports only ``graphs.templating``) should not pay for networkx, pydantic
and the model SDK, which importing all of them at once costs (about a second).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    import networkx as nx

    from graphs.compile import CompiledFlow
    from graphs.document import dump, load, parse
    from graphs.errors import FlowInvalid, ModelError, NodeError, Problem
    from graphs.events import Emitter, Event, EventSink
    from graphs.executor import Run
    from graphs.nodes import NODE_TYPES
    from graphs.nodes.base import Services
    from graphs.schedule import Recorded, RunOptions
    from graphs.spec import RunResult

_HOMES = {
    "dump": "graphs.document",
    "load": "graphs.document",
    "parse": "graphs.document",
    "FlowInvalid": "graphs.errors",
    "ModelError": "graphs.errors",
    "NodeError": "graphs.errors",
    "Problem": "graphs.errors",
    "Emitter": "graphs.events",
    "Event": "graphs.events",
    "EventSink": "graphs.events",
    "CompiledFlow": "graphs.compile",
    "Recorded": "graphs.schedule",
    "Run": "graphs.executor",
    "RunOptions": "graphs.schedule",
    "RunResult": "graphs.spec",
    "NODE_TYPES": "graphs.nodes",
}

__all__ = [
    "NODE_TYPES",
    "CompiledFlow",
    "Emitter",
    "Event",
    "EventSink",
    "FlowInvalid",
    "ModelError",
    "NodeError",
    "Problem",
    "Recorded",
    "Run",
    "RunOptions",
    "RunResult",
    "compile_flow",
    "dump",
    "load",
    "parse",
    "validate",
]


def compile_flow(
    flow: nx.MultiDiGraph | Mapping[str, Any], services: Services | None = None
) -> CompiledFlow:
    """Validate a flow (graph or document) and prepare it to run; raises FlowInvalid.

    Without ``services``, those the environment describes (``graphs.settings``).

    >>> flow = compile_flow({"graph": {"name": "empty"}, "nodes": [], "edges": []})
    >>> flow.name, flow.inputs
    ('empty', {})
    """
    from graphs.compile import compile_flow as compile_with
    from graphs.settings import services_from_env

    return compile_with(flow, services_from_env() if services is None else services)


def validate(graph: nx.MultiDiGraph, services: Services | None = None) -> list[Problem]:
    """Every problem of the flow graph; an empty list means it can run.

    Without ``services``, the built-in node types and tools (``default_services``).

    >>> from graphs import load
    >>> hello = {"id": "t", "type": "template", "config": {"template": "Hi {{ who }}"}}
    >>> [str(p) for p in validate(load({"graph": {"name": "hi"}, "nodes": [hello], "edges": []}))]
    ["node 't': template variable {{ who }} has no port: connect an edge into 'who'"]
    """
    from graphs.settings import default_services
    from graphs.validation import validate as validate_with

    return validate_with(graph, default_services() if services is None else services)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'graphs' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
