"""The command line's saved flows: JSON documents in one directory, named by reference.

``FileFlows`` is the ``graphs.subflows.FlowSource`` that ``python -m graphs`` lends a run
(``--flows DIR``, else the directory of the flow it runs): ``flow: "summarize"`` is
``DIR/summarize.json``. References have no ``.`` or ``/`` (``graphs.subflows.REFERENCE``),
so none leaves the directory.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from graphs import document
from graphs.errors import FlowInvalid
from graphs.nodes.base import Services
from graphs.subflows import (
    MAX_DEPTH,
    ChildCall,
    ChildResult,
    FlowInfo,
    FlowUnavailable,
    check_reference,
    describe,
    refusal,
)


class FileFlows:
    """The command line's flows: JSON documents in one directory, named by reference.

    ``chain``: the references of the flows running, outermost first (the command line
    starts it with the name of the file it runs). A child runs in this process, with
    these services but a source one link longer; its events are not recorded (the
    command line records one run), its usage is its caller's.
    """

    def __init__(
        self, directory: str | Path, chain: tuple[str, ...] = (), max_depth: int = MAX_DEPTH
    ):
        self.directory = Path(directory)
        self.chain = chain
        self.max_depth = max_depth

    def look_up(self, reference: str, version: int | None = None) -> FlowInfo:
        if (problem := check_reference(reference)) is not None:
            raise FlowUnavailable(problem)
        if version is not None:
            raise FlowUnavailable(
                f"flow {reference!r}: files have no versions; leave version empty", "version"
            )
        if (refused := refusal(self.chain, reference, self.max_depth)) is not None:
            raise FlowUnavailable(refused)
        path = self.directory / f"{reference}.json"
        try:
            text = path.read_bytes()
        except OSError:
            raise FlowUnavailable(f"no flow {reference!r} ({path} cannot be read)") from None
        try:
            doc = document.parse(text)
        except (ValueError, RecursionError) as exc:
            raise FlowUnavailable(f"flow {reference!r} ({path}) is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise FlowUnavailable(f"flow {reference!r} ({path}) is not a flow document")
        return describe(reference, doc)

    def inside(self, reference: str) -> FileFlows:
        return FileFlows(self.directory, (*self.chain, reference), self.max_depth)

    async def run(self, call: ChildCall, services: Services) -> ChildResult:
        # Here, not at the top: ``python -m graphs validate`` lends this class but runs nothing.
        from graphs.compile import compile_flow

        try:
            info = self.look_up(call.reference, call.version)
            child = compile_flow(
                info.document, replace(services, flows=self.inside(call.reference))
            )
            inputs = child.resolve_inputs(call.inputs)
        except FlowUnavailable as exc:
            return ChildResult("failed", {}, str(exc))
        except FlowInvalid as exc:
            return ChildResult("failed", {}, f"flow {call.reference!r} cannot run: {exc}")
        result = await child.run(inputs)
        return ChildResult(result.status, result.outputs, result.error, dict(result.usage_by_model))
