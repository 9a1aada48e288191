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
"""

from graphs.document import dump, load, parse
from graphs.errors import FlowInvalid, ModelError, NodeError, Problem
from graphs.events import Emitter, Event, EventSink
from graphs.executor import CompiledFlow, Recorded, Run, RunOptions, RunResult, compile_flow
from graphs.nodes import NODE_TYPES
from graphs.validation import validate

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
