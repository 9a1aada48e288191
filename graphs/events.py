"""Run events: numbered, time-stamped JSON objects handed to a sink.

Event types: ``run_started``, ``node_started``, ``node_delta`` (streamed text,
coalesced), ``node_thinking`` (the model's streamed thinking, coalesced the same way and
kept apart from the text), ``node_progress`` (done/total of a map), ``node_item`` (a map's item's
own event), ``node_retrying``, ``node_finished``, ``node_skipped``, ``node_failed``,
``node_waiting``, ``node_resumed``, ``agent_turn``, ``agent_tool``, ``batch_sent``,
``run_finished``.
Node events carry ``node`` and ``iteration``.

Fields beyond those, by event (keys are only ever added, so old recordings still
read; ``run_started.schema`` is the version of this list, missing means 1):

- ``run_started``: ``flow``, ``inputs``, ``schema``.
- ``node_started``: ``inputs``, the values the node ran on (overrides applied).
- ``node_delta``, ``node_thinking``: ``text``.
- ``node_finished``: ``output`` (port -> value), ``duration_s``; ``attempts`` when
  retried; ``usage`` ({input_tokens, output_tokens}, and ``thinking_tokens``, the part of
  the output tokens spent thinking, when there was thinking) and ``model`` when it used a
  model (a map: its items' tokens), with ``usage_by_model`` when that was several
  models; ``detail`` (rendered prompt, route, ...). A node reused from an earlier
  run has ``reused: {source}``, ``duration_s: 0`` and no usage. A node cache hit
  has ``usage`` zero and ``cached: {source, usage}``, the usage it saved; its
  stored text arrives as one ``node_delta`` before it.
- ``node_failed``: ``error``; ``cancelled: true`` when the run stopped it,
  ``continued: true`` when its error went on down the ``error`` port.
- ``node_item``: ``item`` (its index in the map's list) and ``event``, the item's own
  event it stands for: ``run_started``; ``node_started``, ``node_delta`` (``text``,
  coalesced in the item as here), ``node_finished`` (``usage`` when it used a model) or
  ``node_failed`` (``error``), each with ``inner``, the item's node; ``run_finished``
  (``status``, ``error`` when it failed); or ``node_item`` itself, when the item's node
  ``inner`` is a map of its own: ``nested`` holds that map's item event (``item``,
  ``event``, ... as here, nesting again for a map deeper still). Only a map's first
  ``item_events`` items send them, at each level; inputs and outputs stay out (the map's
  ``node_finished`` has the results).
- ``node_retrying``: ``attempt``, ``error``, ``delay_s``; ``takeover: true`` when a
  distributed driver runs the node again because the worker running it stopped answering.
- ``node_waiting``: ``wait``, what the node waits for (JSON: ``kind``, ``message``,
  ``fields``, ``actions``, ``timeout_s``...); the run is parked until it is resumed.
- ``node_resumed``: ``by``, who answered (JSON); a ``node_finished`` with the answer's
  ``output``, ``detail`` ``{wait, by}`` and no ``duration_s`` follows. A node paused at a
  breakpoint waits with ``{"kind": "breakpoint", "inputs"}`` before its ``node_started``;
  its ``node_resumed`` adds ``action`` (``continue`` or ``step``), the ``inputs`` it
  starts on and the ports ``edited``, and its ``node_started`` follows.
  ``output``, ``detail`` ``{wait, by}`` and no ``duration_s`` follows. A wait that asked
  to run its node again (``wait.rerun``: an agent's tool approval) has ``answer`` instead
  (what was answered, JSON) and no ``node_finished``: the node runs on, reading it.
- ``agent_turn``: one reply of an agent's model, written before the agent goes on:
  ``turn`` (from 1), ``content`` (the assistant's blocks, thinking included, exactly as
  they go back to the model), ``stop_reason``, ``model``, ``usage``, ``key`` (a digest of
  what the conversation began with: turns of another key are not this visit's), and
  ``source`` ("run 7") when it was recorded by an earlier run and carried over.
- ``agent_tool``: one tool call of an agent answered: ``turn``, ``tool_use_id``,
  ``name``, ``input``, ``content`` (what went back to the model), ``is_error``, ``key``,
  ``rejected`` (``{by, reason}``) when a person refused the call, and ``source`` as above.
- ``batch_sent``: a node's model calls went in a Message Batch (``graphs.llm.batch``),
  stored before the node parks on it: ``batch_id``, ``custom_ids``. The node run again
  before it parked (a takeover) parks on that batch rather than send another.
- ``run_finished``: ``status``, ``outputs``, ``usage``, ``usage_by_model``
  ({model: usage}, failed attempts and map items included), ``error``.

>>> seen = []
>>> emitter = Emitter(seen.append, clock=lambda: 0.0)
>>> emitter.emit("run_started", inputs={})["seq"]
1
>>> emitter.emit("node_started", node="a", iteration=1)
{'seq': 2, 'ts': 0.0, 'type': 'node_started', 'node': 'a', 'iteration': 1}
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

Event = dict[str, Any]
EventSink = Callable[[Event], None]
"""Receives each event in order. It must not block or raise: queue slow work elsewhere."""

# The version of the event fields above; bump it when a field changes meaning.
SCHEMA = 1

COALESCE_S = 0.05
# A delta flushes early past this size, so a fast stream still arrives in pieces.
MAX_DELTA_CHARS = 4096


def discard(_: Event) -> None:
    """A sink for runs nobody watches (a map's items past its ``item_events``)."""


class Emitter:
    """Numbers events from 1 without gaps and coalesces streamed text per node visit.

    Thinking and text of one visit coalesce apart (``kind``); a piece of the other kind
    flushes what is pending first, so the log keeps the order they streamed in.
    """

    def __init__(
        self,
        sink: EventSink,
        *,
        coalesce_s: float = COALESCE_S,
        clock: Callable[[], float] = time.time,
        seq: int = 0,
        commit: Callable[[], Awaitable[None]] | None = None,
    ):
        """``seq``: the number of the last event already out (a resumed run goes on);
        ``commit``: waits until every event the sink was given is stored for good (a
        durable sink's; the default sink keeps nothing, so there is nothing to wait for)."""
        self._sink = sink
        self._commit = commit
        self._clock = clock
        self._coalesce_s = coalesce_s
        self._seq = seq
        self._pending: dict[tuple[str, int], list[str]] = {}
        self._kinds: dict[tuple[str, int], str] = {}
        self._sizes: dict[tuple[str, int], int] = {}
        self._timers: dict[tuple[str, int], asyncio.TimerHandle] = {}

    @property
    def seq(self) -> int:
        return self._seq

    def emit(self, type_: str, **fields: Any) -> Event:
        self._seq += 1
        event = {"seq": self._seq, "ts": self._clock(), "type": type_, **fields}
        self._sink(event)
        return event

    def delta(self, node: str, iteration: int, text: str, kind: str = "node_delta") -> None:
        if not text:
            return
        key = (node, iteration)
        buffer = self._pending.get(key)
        if buffer is not None and self._kinds[key] != kind:
            self.flush(node, iteration)
            buffer = None
        if buffer is None:
            self._kinds[key] = kind
            buffer = self._pending[key] = []
            loop = asyncio.get_running_loop()
            self._timers[key] = loop.call_later(self._coalesce_s, self.flush, node, iteration)
        buffer.append(text)
        self._sizes[key] = size = self._sizes.get(key, 0) + len(text)
        if size >= MAX_DELTA_CHARS:
            self.flush(node, iteration)

    def flush(self, node: str, iteration: int) -> None:
        """Emit the text buffered for one node visit, if any (before its finish event)."""
        key = (node, iteration)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        buffer = self._pending.pop(key, None)
        self._sizes.pop(key, None)
        kind = self._kinds.pop(key, "node_delta")
        if buffer:
            self.emit(kind, node=node, iteration=iteration, text="".join(buffer))

    async def commit(self) -> None:
        """Wait until what was emitted so far is stored (an agent's turn, say, before its
        next model call), where the sink can say so."""
        if self._commit is not None:
            await self._commit()

    def flush_all(self) -> None:
        for node, iteration in list(self._pending):
            self.flush(node, iteration)
