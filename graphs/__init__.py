"""Switchyard's engine: flows are networkx graphs, run by a small async executor.

Pure Python: it never imports Django. The public API:

- ``load`` / ``dump`` / ``parse``: the flow document <-> ``networkx.MultiDiGraph``
- ``validate``: every problem of a flow, each naming its node or edge
- ``compile_flow``: validate once, then ``await flow.run(inputs, sink)``
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
    from graphs.document import dump, load, parse
    from graphs.errors import FlowInvalid, ModelError, NodeError, Problem
    from graphs.events import Emitter, Event, EventSink
    from graphs.executor import CompiledFlow, Recorded, Run, RunOptions, RunResult, compile_flow
    from graphs.nodes import NODE_TYPES
    from graphs.validation import validate

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
    "CompiledFlow": "graphs.executor",
    "Recorded": "graphs.executor",
    "Run": "graphs.executor",
    "RunOptions": "graphs.executor",
    "RunResult": "graphs.executor",
    "compile_flow": "graphs.executor",
    "NODE_TYPES": "graphs.nodes",
    "validate": "graphs.validation",
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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'graphs' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
