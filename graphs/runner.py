"""Running one node: the node cache, attempts with retries and backoff, timeouts, slots.

A ``NodeRunner`` runs the nodes a ``Schedule`` says are ready, one ``run`` call per
node, and reports what happens as events (``node_started``, ``node_delta``,
``node_progress``, ``node_retrying``, ``node_finished``, ``node_failed``) through
an ``Emitter``. It returns the ``Outcome`` to feed back into the schedule. It keeps
no state between calls, so the in-process executor and a worker that runs a single
node of a run somewhere else use it alike.

>>> import asyncio
>>> from graphs import compile_flow
>>> from graphs.events import Emitter, EventSink
>>> from graphs.schedule import Ready
>>> flow = compile_flow({
...     "graph": {"name": "greet"},
...     "nodes": [
...         {"id": "who", "type": "input", "config": {"name": "who"}},
...         {"id": "greet", "type": "template", "config": {"template": "Hi {{ who }}"}},
...     ],
...     "edges": [
...         {"source": "who", "target": "greet", "source_port": "value", "target_port": "who"},
...     ],
... })
>>> seen = []
>>> runner = NodeRunner(flow, emitter=Emitter(seen.append), run_inputs={})
>>> asyncio.run(runner.run(Ready("greet", 1, {"who": "Ada"})))
NodeFinished(outputs={'text': 'Hi Ada'}, usage={})
>>> [event["type"] for event in seen]
['node_started', 'node_finished']

A node that asks to wait (``NodeWaits``, an approval) ends with ``NodeWaiting``: it has
no outputs yet, is never cached, and is not retried.

The node cache (``RunOptions.cache``, see ``graphs.cache``). A node whose type
says it is worth caching (``NodeType.cacheable``; ``config.cache`` overrides
it) looks its ``cache_key`` up before it runs, outside any concurrency slot.
A hit reports the stored output, streamed text, model and detail with zero
usage and a ``cached`` note of what it saved; a miss runs the node and stores
what a successful run produced before reporting back. Failures are never
stored. ``read_cache=False`` runs every node but still stores fresh results. A
map's items share the run's cache, not its reuse or overrides.

Usage. Every attempt's tokens count, failed ones included, and a map's node
reports those of its items; the outcome carries them, by model.

Failures. Whatever a node raises fails that node, never the run silently. Only
its own deadline (``timeout_s``) is reported as its timeout; a ``TimeoutError``
from inside it (a client's) fails it under that name and is retried as
transient, as a ``NodeError(retryable=True)`` is; a ``CancelledError`` is a stop
only when the node's own task was cancelled; anything else is an internal error
of its type. Should the runner itself break, its node still fails (and the
schedule fails a run whose node ends with no result while the run goes on).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from graphs import files, templating
from graphs.cache import CachedOutput, cache_key
from graphs.errors import NodeError
from graphs.events import Emitter, EventSink
from graphs.llm import batch
from graphs.llm.types import Usage
from graphs.nodes.base import NodeContext, NodeWaits
from graphs.schedule import (
    NO_OPTIONS,
    NodeCancelled,
    NodeFailed,
    NodeFinished,
    NodeWaiting,
    Outcome,
    Ready,
    RunOptions,
)
from graphs.spec import NodeSpec, RunResult

if TYPE_CHECKING:
    from graphs.compile import CompiledFlow
    from graphs.tools.mcp import McpSessions

log = logging.getLogger(__name__)


class _Failed(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(slots=True)  # not frozen: made once per node, and frozen init costs more
class _Success:
    """A node's successful attempt: its context (usage, model, detail) and what it made."""

    ctx: NodeContext
    outputs: dict[str, Any]
    text: str  # what it streamed, kept only when the result is to be cached


class NodeRunner:
    """Runs single nodes of one run of ``flow``, reporting through ``emitter``.

    ``run_inputs`` are the run's inputs (nodes may read them); ``slots`` caps the
    nodes that hold a slot at once (shared with a map's items).
    """

    def __init__(
        self,
        flow: CompiledFlow,
        *,
        emitter: Emitter,
        run_inputs: Mapping[str, Any],
        options: RunOptions = NO_OPTIONS,
        slots: asyncio.Semaphore | None = None,
    ):
        self.flow = flow
        # The run's MCP sessions: whoever made this runner closes them (``aclose_sessions``)
        # when the run (or, on a worker, the node's task) ends, unless they are lent. Made
        # when a node first needs them (``mcp_sessions``): most flows have no agent, and
        # the MCP module is one the command line need not load for them (issue 18).
        self._mcp_sessions = options.mcp_sessions
        self.owns_sessions = options.mcp_sessions is None
        self._sessions_closed = False
        self.emitter = emitter
        self.run_inputs = run_inputs
        self.services = flow.services
        self.slots = slots or asyncio.Semaphore(flow.services.max_concurrency)
        self.cache = options.cache
        self.read_cache = options.read_cache
        self.history = options.history
        self.latency = options.latency

    async def run(self, ready: Ready) -> Outcome:
        """Run one node to its end; cancelling the caller's task gives ``NodeCancelled``."""
        spec = self.flow.nodes[ready.node]
        iteration, inputs = ready.iteration, ready.inputs
        began = time.monotonic()
        key = self.cache_key(spec, inputs)
        usage: dict[str, Usage] = {}
        try:
            if key is not None and self.read_cache:
                entry = await self.cache_get(key)
                if entry is not None:
                    self.report_cached(spec, ready, entry, began)
                    return NodeFinished(entry.output, usage)
            success = await self.attempts(spec, ready, usage, keep_text=key is not None)
        except asyncio.CancelledError:
            self.emitter.flush(spec.id, iteration)
            return NodeCancelled(True, usage)
        except _Failed as failure:
            return self.report_failed(spec, iteration, failure, usage)
        except NodeWaits as waits:
            # The node parks; the schedule's node_waiting step reports it (no finish yet).
            self.emitter.flush(spec.id, iteration)
            return NodeWaiting(waits.wait, usage)
        except Exception as exc:
            # The runner's own bug (a cache or an emitter that breaks, say) still ends its
            # node as failed, never as a node that silently produced nothing.
            log.exception("running node %r failed", spec.id)
            broke = _Failed(f"internal error running the node: {_described(exc)}")
            return self.report_failed(spec, iteration, broke, usage)
        self.report_finished(spec, iteration, success, began)
        if usage:  # failed attempts came first
            _add_usage(usage, success.ctx.usage_by_model)
        else:
            usage = success.ctx.usage_by_model
        if key is not None:
            await self.cache_put(key, spec, success)
        return NodeFinished(success.outputs, usage)

    # Reporting ----------------------------------------------------------------------

    def report_cached(
        self, spec: NodeSpec, ready: Ready, entry: CachedOutput, began: float
    ) -> None:
        node, iteration = spec.id, ready.iteration
        self.emitter.emit("node_started", node=node, iteration=iteration, inputs=ready.inputs)
        if entry.text:
            self.emitter.emit("node_delta", node=node, iteration=iteration, text=entry.text)
        finished: dict[str, Any] = {
            "node": node,
            "iteration": iteration,
            "output": entry.output,
            "duration_s": round(time.monotonic() - began, 6),
            "usage": Usage().as_dict(),
        }
        if entry.model is not None:
            finished["model"] = entry.model
        if entry.detail:
            finished["detail"] = entry.detail
        finished["cached"] = {"source": entry.source, "usage": entry.usage.as_dict()}
        self.emitter.emit("node_finished", **finished)

    def report_finished(
        self, spec: NodeSpec, iteration: int, success: _Success, began: float
    ) -> None:
        ctx = success.ctx
        self.emitter.flush(spec.id, iteration)
        finished: dict[str, Any] = {
            "node": spec.id,
            "iteration": iteration,
            "output": success.outputs,
            "duration_s": round(time.monotonic() - began, 6),
        }
        if ctx.attempt > 1:
            finished["attempts"] = ctx.attempt
        if ctx.model is not None:
            finished["usage"] = ctx.usage.as_dict()
            finished["model"] = ctx.model
            if len(ctx.usage_by_model) > 1:  # a map whose items used several models
                finished["usage_by_model"] = {
                    m: u.as_dict() for m, u in sorted(ctx.usage_by_model.items())
                }
        if ctx.detail:
            finished["detail"] = ctx.detail
        if ctx.child_runs:
            finished["child_runs"] = list(ctx.child_runs)
        self.emitter.emit("node_finished", **finished)

    def report_failed(
        self, spec: NodeSpec, iteration: int, failure: _Failed, usage: dict[str, Usage]
    ) -> NodeFailed:
        node = spec.id
        self.emitter.flush(node, iteration)
        if spec.config.on_error == "continue":
            self.emitter.emit(
                "node_failed", node=node, iteration=iteration, error=failure.message, continued=True
            )
            return NodeFailed(failure.message, True, usage)
        self.emitter.emit("node_failed", node=node, iteration=iteration, error=failure.message)
        return NodeFailed(failure.message, False, usage)

    # The node cache -------------------------------------------------------------------

    def cache_key(self, spec: NodeSpec, inputs: dict[str, Any]) -> str | None:
        if self.cache is None or spec.cache_config is None:
            return None
        return cache_key(
            node_type=spec.type.name,
            version=spec.type.version,
            config=spec.cache_config,
            default_model=self.services.default_model,
            # A file input by its content's sha256, not its id (graphs.files).
            inputs=files.cache_form(inputs),
            client=self.services.model_client.name,
        )

    async def cache_get(self, key: str) -> CachedOutput | None:
        assert self.cache is not None
        try:
            return await self.cache.get(key)
        except Exception:
            # The cache only saves work: a lookup that fails is a miss, not a failed node.
            log.warning("node cache lookup failed; running the node", exc_info=True)
            return None

    async def cache_put(self, key: str, spec: NodeSpec, success: _Success) -> None:
        assert self.cache is not None
        ctx = success.ctx
        entry = CachedOutput(
            output=success.outputs,
            text=success.text,
            model=ctx.model,
            usage=ctx.usage,
            detail=ctx.detail,
        )
        try:
            await self.cache.put(key, spec.type.name, entry)
        except asyncio.CancelledError:
            # The node has finished and said so; a stop only costs the cache its entry.
            log.info("node cache store cancelled; the result is not cached")
        except Exception:
            log.warning("node cache store failed; the result is not cached", exc_info=True)

    # Attempts -------------------------------------------------------------------------

    async def attempts(
        self, spec: NodeSpec, ready: Ready, usage: dict[str, Usage], *, keep_text: bool
    ) -> _Success:
        """Run the node, retrying what is retryable; raises _Failed with the last error.

        Failed attempts add their tokens to ``usage``.
        """
        config = spec.config
        iteration = ready.iteration
        services = self.services
        on_lane = self.latency == "batch" and batch.supports(services.model_client)
        if on_lane:
            # The run's calls go in batches: this node's are answered from its earlier
            # visits' batches (graphs.llm.batch), or collected for one.
            answers = batch.answered(await self.prior(spec.id, iteration))
            services = replace(services, batch=batch.BatchLane(answers))
        for attempt in range(1, config.retries + 2):
            # Only the text of the attempt that succeeds is what a cache hit replays.
            texts: list[str] | None = [] if keep_text else None
            ctx = NodeContext(
                node_id=spec.id,
                iteration=iteration,
                attempt=attempt,
                run_inputs=self.run_inputs,
                services=services,
                prepared=spec.prepared,
                emit_text=self.text_sink(spec.id, iteration, texts),
                emit_progress=lambda done, total: self.emitter.emit(
                    "node_progress", node=spec.id, iteration=iteration, done=done, total=total
                ),
                run_subflow=self.run_subflow,
                emit_item=lambda fields: self.emitter.emit(
                    "node_item", node=spec.id, iteration=iteration, **fields
                ),
                emit_thinking=lambda text: self.emitter.delta(
                    spec.id, iteration, text, "node_thinking"
                ),
                prior=lambda: self.prior(spec.id, iteration),
                record=lambda type_, fields: self.record(spec.id, iteration, type_, fields),
                mcp_sessions=self.mcp_sessions if spec.type.uses_mcp else None,
            )
            try:
                if spec.type.holds_slot:
                    async with self.slots:
                        outputs = await self.attempt(spec, ctx, ready.inputs)
                else:
                    outputs = await self.attempt(spec, ctx, ready.inputs)
                return _Success(ctx, outputs, "".join(texts) if texts else "")
            except batch.BatchPending as pending:
                _add_usage(usage, ctx.usage_by_model)
                if not on_lane:
                    raise  # a map's item: its map sends its items' calls in one batch
                raise NodeWaits(await self.submit(spec.id, iteration, pending)) from None
            except NodeWaits:
                _add_usage(usage, ctx.usage_by_model)  # what it spent before asking counts
                raise
            except NodeError as error:
                _add_usage(usage, ctx.usage_by_model)
                if not error.retryable or attempt > config.retries:
                    suffix = f" (after {attempt} attempts)" if attempt > 1 else ""
                    raise _Failed(f"{error}{suffix}") from None
                delay = self.backoff(attempt, error.retry_after)
                self.emitter.flush(spec.id, iteration)
                self.emitter.emit(
                    "node_retrying",
                    node=spec.id,
                    iteration=iteration,
                    attempt=attempt,
                    error=str(error),
                    delay_s=round(delay, 3),
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    async def submit(
        self, node: str, iteration: int, pending: batch.BatchPending
    ) -> dict[str, Any]:
        """Send a node's call in a batch of its own (unless the visit sent it already and
        did not get to park); the wait it parks with."""
        ids = [pending.cid]
        batch_id = batch.sent_before(await self.prior(node, iteration), ids)
        if batch_id is not None:
            return batch.wait_for(batch_id, ids)
        client: Any = self.services.model_client
        try:
            batch_id = await client.submit_batch({pending.cid: pending.request})
        except NodeError as error:  # a ModelError: the API refused or could not be reached
            raise _Failed(f"could not send the model call in a batch: {error}") from None
        await self.record(node, iteration, batch.SENT, batch.sent(batch_id, ids))
        return batch.wait_for(batch_id, ids)

    async def prior(self, node: str, iteration: int) -> list[dict[str, Any]]:
        """What the visit recorded before (graphs.history), this run's latest events among
        them (a ``node_resumed`` that made it run again)."""
        if self.history is None:
            return []
        await self.emitter.commit()
        return await self.history.events(node, iteration)

    async def record(self, node: str, iteration: int, type_: str, fields: dict[str, Any]) -> None:
        # The text it streamed first goes first, as it came.
        self.emitter.flush(node, iteration)
        self.emitter.emit(type_, node=node, iteration=iteration, **fields)
        await self.emitter.commit()

    def text_sink(
        self, node: str, iteration: int, texts: list[str] | None
    ) -> Callable[[str], None]:
        delta = self.emitter.delta
        if texts is None:
            return lambda text: delta(node, iteration, text)

        def keep(text: str) -> None:
            texts.append(text)
            delta(node, iteration, text)

        return keep

    async def attempt(self, spec: NodeSpec, ctx: NodeContext, inputs: dict[str, Any]) -> dict:
        if ctx.attempt == 1:
            self.emitter.emit("node_started", node=spec.id, iteration=ctx.iteration, inputs=inputs)
        timeout = spec.config.timeout_s
        deadline: asyncio.Timeout | None = None
        try:
            if timeout is None:
                return await spec.type.run(ctx, spec.config, inputs)
            async with asyncio.timeout(timeout) as deadline:
                return await spec.type.run(ctx, spec.config, inputs)
        except TimeoutError as exc:
            if deadline is not None and deadline.expired():
                raise NodeError(f"timed out after {timeout:g}s", retryable=True) from None
            # Not our deadline but one inside the node (a client's read timeout, say):
            # as transient as ours, so retried the same way, under its own name.
            raise NodeError(_described(exc), retryable=True) from exc
        except templating.TemplateProblem as problem:
            raise NodeError(str(problem)) from None
        except (NodeError, NodeWaits):
            raise
        except asyncio.CancelledError as exc:
            if _being_cancelled():
                raise
            # Something the node awaited was cancelled, not the node: that is its failure.
            raise NodeError(f"internal error in {spec.type.name}: {_described(exc)}") from exc
        except Exception as exc:
            # A bug in a node type must fail its node, not the whole engine.
            raise NodeError(f"internal error in {spec.type.name}: {_described(exc)}") from exc

    @property
    def mcp_sessions(self) -> McpSessions:
        """The run's MCP sessions (lent, or this runner's own, made on first use)."""
        if self._mcp_sessions is None:
            from graphs.tools.mcp import McpSessions

            self._mcp_sessions = McpSessions()
            # Asked for once the run is over: refused, as the closed sessions would be.
            self._mcp_sessions.closed = self._sessions_closed
        return self._mcp_sessions

    async def aclose_sessions(self) -> None:
        """Close the run's MCP sessions, when this runner's own (the run is over)."""
        if not self.owns_sessions:
            return
        self._sessions_closed = True
        if self._mcp_sessions is not None:
            await self._mcp_sessions.aclose()

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.services.backoff_max_s)
        ceiling = self.services.backoff_base_s * 2 ** (attempt - 1)
        # Jitter spreads out retries of the many nodes a burst of 429s hits at once.
        return min(ceiling, self.services.backoff_max_s) * random.uniform(0.5, 1.0)  # noqa: S311

    async def run_subflow(
        self, flow: CompiledFlow, inputs: Mapping[str, Any], sink: EventSink | None = None
    ) -> RunResult:
        """Run a map's item; its events go to ``sink`` (numbered there afresh), else nowhere."""
        # A map's items share the cache; what to reuse or override names this flow's nodes.
        options = RunOptions(
            cache=self.cache, read_cache=self.read_cache, mcp_sessions=self.mcp_sessions
        )
        if flow.services.budget is not self.services.budget:
            # The items' calls count against the run's budget (the map compiled its flow
            # with the services of the version, which a host lends no run's budget).
            flow = copy.copy(flow)
            flow.services = replace(flow.services, budget=self.services.budget)
        return await flow.run(inputs, sink, slots=self.slots, options=options)


def _described(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _being_cancelled() -> bool:
    """Whether this task has been asked to stop (a ``CancelledError`` may be another's)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _add_usage(totals: dict[str, Usage], usage: Mapping[str, Usage]) -> None:
    for model, used in usage.items():
        totals[model] = totals[model] + used if model in totals else used
