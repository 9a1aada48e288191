"""The executor: one run of a compiled flow in this process, a small loop over its steps.

>>> import asyncio
>>> from graphs import compile_flow
>>> flow = compile_flow({
...     "graph": {"name": "greet"},
...     "nodes": [
...         {"id": "who", "type": "input", "config": {"name": "who"}},
...         {"id": "greet", "type": "template", "config": {"template": "Hello {{ who }}!"}},
...         {"id": "out", "type": "output", "config": {"name": "greeting"}},
...     ],
...     "edges": [
...         {"source": "who", "target": "greet", "source_port": "value", "target_port": "who"},
...         {"source": "greet", "target": "out", "source_port": "text", "target_port": "value"},
...     ],
... })
>>> result = asyncio.run(flow.run({"who": "world"}))
>>> result.status, result.outputs
('succeeded', {'greeting': 'Hello world!'})

The rules are in ``graphs.schedule``: how values move between ports, when a node
fires, when a branch is skipped, what reuse and overrides do, how a run ends. A
``Schedule`` is a state machine over a serialisable ``RunState``, moved on one
step at a time. This module drives it in one process: it emits each step's
events, starts a task for each node the step made ready (``graphs.runner``'s
``NodeRunner`` runs it: the node cache, attempts, retries, timeout, slots) and
feeds how the node ended back in as the next step. A distributed driver can run
the very same steps, with the state stored between them. Compiling the flow, and
starting a run of it (``CompiledFlow.run`` and ``start``), is ``graphs.compile``'s.

Waiting. When every node still running waits for someone (an ``approval``), the run
is parked: ``execute`` returns a ``waiting`` result holding the run's state JSON and
nothing of the run is left in this process, no task and no concurrency slot. An
execution built from that state (``CompiledFlow.resume``) answers the wait and runs on.

Usage. Every attempt's tokens count, failed ones included, and a map's node
reports those of its items; ``run_finished`` gives the total and the total per
model.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from graphs.events import Emitter
from graphs.runner import NodeRunner
from graphs.schedule import (
    NO_OPTIONS,
    NodeCancelled,
    Outcome,
    Ready,
    Recorded,
    RunOptions,
    RunState,
    Schedule,
    Status,
    StepResult,
)
from graphs.spec import RunResult

if TYPE_CHECKING:
    from graphs.compile import CompiledFlow

log = logging.getLogger(__name__)

# Run is this module's own; the rest were importable from here before graphs.compile and
# graphs.spec existed, and still are.
__all__ = ["NO_OPTIONS", "Recorded", "Run", "RunOptions", "RunResult"]


class Run:
    """A run in progress: ``await run.wait()`` for its result, ``run.cancel()`` to stop it."""

    def __init__(self, execution: Execution):
        self._execution = execution
        self._task = asyncio.ensure_future(execution.execute())

    def cancel(self) -> None:
        self._execution.stop("cancelled", None)

    async def wait(self) -> RunResult:
        return await self._task


_BROKEN = NodeCancelled(started=False)


class Execution:
    """One run in this process: a small loop over the schedule's steps.

    Each step's events go out through the emitter, each node it made ready runs as
    a task, and each task feeds how its node ended back in as the next step.
    """

    def __init__(
        self,
        flow: CompiledFlow,
        inputs: dict[str, Any],
        emitter: Emitter,
        *,
        slots: asyncio.Semaphore | None,
        options: RunOptions,
        state: RunState | None = None,
    ):
        self.inputs = inputs
        self.options = options
        self.emitter = emitter
        # A parked run's state when this execution resumes it (see ``resume``).
        self.schedule = Schedule(flow.plan, state)
        self.runner = NodeRunner(
            flow, emitter=emitter, run_inputs=inputs, options=options, slots=slots
        )
        self.tasks: dict[asyncio.Task[None], Ready] = {}
        self.quiet = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        # A resumed run's result carries its state even when over, for its driver to store
        # (a second answer to the same wait is then refused).
        self.resumed = False

    async def execute(self) -> RunResult:
        self.loop = asyncio.get_running_loop()
        self.apply(self.schedule.begin(self.inputs, self.options))
        return await self.settle()

    async def resume(
        self, node: str, iteration: int, outputs: dict[str, Any], by: dict[str, Any]
    ) -> RunResult:
        """Answer a waiting node of the parked run this execution was built from, and run on
        until the run ends or parks again. StepRefused when the node does not wait."""
        self.loop = asyncio.get_running_loop()
        self.apply(self.schedule.resume(node, iteration, outputs, by))
        self.resumed = True
        return await self.settle()

    async def go_on(
        self,
        node: str,
        iteration: int,
        inputs: dict[str, Any] | None,
        by: dict[str, Any],
        *,
        step: bool = False,
    ) -> RunResult:
        """Let a node of the parked run paused at a breakpoint start (on ``inputs``, edited,
        or None for those it paused with) and run on until the run ends or parks again.
        StepRefused when the node does not wait at a breakpoint."""
        self.loop = asyncio.get_running_loop()
        self.apply(self.schedule.go_on(node, iteration, inputs, by, step=step))
        self.resumed = True
        return await self.settle()

    async def resume_budget(self, budget_usd: float, by: dict[str, Any]) -> RunResult:
        """Run again the nodes of the parked run that paused for its budget, now raised to
        ``budget_usd``, and run on. StepRefused when none is paused for it."""
        self.loop = asyncio.get_running_loop()
        self.apply(self.schedule.resume_budget(budget_usd, by))
        self.resumed = True
        return await self.settle()

    async def settle(self) -> RunResult:
        """Wait until the run is over or parked: no task of it is left either way.

        Then its MCP sessions close: a parked run holds none, its resumption opens anew."""
        try:
            if self.tasks:  # else the run is over already
                await self.quiet.wait()
        except asyncio.CancelledError:
            # Whoever awaited the run was cancelled: stop the nodes, record it, pass it on.
            self.stop("cancelled", None)
            if self.tasks:
                await asyncio.wait(list(self.tasks))
            raise
        finally:
            await self.runner.aclose_sessions()
        return self.result()

    def stop(self, status: Status, error: str | None, failed_node: str | None = None) -> None:
        """End the run early: cancel every node still running."""
        self.apply(self.schedule.stop(status, error, failed_node))

    def apply(self, step: StepResult) -> None:
        """Emit a step's events, cancel or start what it says, and note when the run is over."""
        if step.events:
            self.emit(step)
        if step.stopped:
            self.cancel_all()
        if step.ready:
            self.launch(step.ready)
        if step.done or step.waiting:
            # Parked: every running node waits for someone, so no task is left to await.
            self.quiet.set()

    def launch(self, ready_nodes: list[Ready]) -> None:
        schedule = self.schedule
        if schedule.state.ending is not None:
            # A sink stopped the run while this step's events went out: these never start.
            for ready in ready_nodes:
                self.apply(schedule.node_cancelled(ready.node, ready.iteration, started=False))
            return
        create_task = self.loop.create_task  # type: ignore[union-attr]
        for ready in ready_nodes:
            self.tasks[create_task(self.run_node(ready))] = ready

    def emit(self, step: StepResult) -> None:
        emitter = self.emitter
        for type_, fields in step.events:
            if type_ == "run_finished":
                emitter.flush_all()
            emitter.emit(type_, **fields)

    async def run_node(self, ready: Ready) -> None:
        outcome: Outcome | None = None
        try:
            outcome = await self.runner.run(ready)
        except Exception:
            # The runner reports a node's own failures; this is the runner breaking.
            log.exception("the runner of node %r broke", ready.node)
        finally:
            del self.tasks[asyncio.current_task()]  # type: ignore[arg-type]
            # Should the runner itself break, its node still ends so the run can: failed,
            # unless the run is ending anyway (the schedule's rule for a cancelled node).
            self.apply(self.schedule.apply(ready, _BROKEN if outcome is None else outcome))

    def cancel_all(self) -> None:
        for task in self.tasks:
            task.cancel()
            # A task cancelled before its first step never reaches run_node's finally.
            task.add_done_callback(self.forget)

    def forget(self, task: asyncio.Task[None]) -> None:
        ready = self.tasks.pop(task, None)
        if ready is not None:
            self.apply(self.schedule.node_cancelled(ready.node, ready.iteration, started=False))

    def result(self) -> RunResult:
        state = self.schedule.state
        ending = state.ending
        if state.is_waiting:
            return RunResult(
                "waiting",
                state.outputs,
                state.usage,
                usage_by_model=dict(state.usage_by_model),
                state=state.to_json(),
            )
        return RunResult(
            "succeeded" if ending is None else ending.status,
            state.outputs,
            state.usage,
            None if ending is None else ending.error,
            None if ending is None else ending.failed_node,
            dict(state.usage_by_model),
            state.to_json() if self.resumed else None,
        )
