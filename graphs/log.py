"""The one fold of a run's event log into state: the run's, and each node visit's.

Every reader of a log (the run pages, compare, the timeline, re-run plans, closing an
interrupted run, and the browser through ``static/js/runs/log.js``) folds it here, so a
new event field is read in one place (two: this module and its JavaScript twin, which
``tests/fixtures/logs`` holds to the same answers).

A ``RunLog`` is fed one event at a time (``apply``), so a live view can follow a run as
it goes; ``fold(events)`` folds a whole log. A *visit* is one execution of a node: its
``(node, iteration)``, retries included. ``to_json()`` is the whole state as plain JSON,
exactly equal to what the JavaScript fold's ``toJSON()`` gives for the same events:

- run: ``status`` (``queued`` until ``run_started``, ``running``, ``waiting`` while
  every visit begun and not ended waits for someone (``node_waiting``, until its
  ``node_resumed``), then the ``run_finished`` status: ``succeeded``, ``failed`` or
  ``cancelled``), ``schema`` (1
  when the log predates it), ``inputs``, ``outputs``, ``error``, ``usage``
  (``{input_tokens, output_tokens}``, with ``thinking_tokens``,
  ``cache_creation_input_tokens``, ``cache_read_input_tokens`` and
  ``cache_creation_1h_input_tokens`` each once an event counts some: the nodes' sum while
  running, the run's own figure once finished), ``usage_by_model``, ``cost_usd``,
  ``saved_usd`` and ``provider_saved_usd`` (what the provider's prompt cache saved) (null
  until an event carries a figure),
  ``cache_hits``, ``started_ts``, ``finished_ts``, ``duration_s``, ``last_seq``, ``last_ts``,
  ``budget_usd`` (the run's budget as its latest ``run_paused`` or ``run_resumed`` said, null
  before either), ``paused`` (null, or while the run is paused for its budget, the latest
  ``run_paused``'s ``{node, iteration, spent_usd, remaining_usd, needed_usd, budget_usd}``);
- ``nodes``: node id -> its visits, by iteration, each with ``node``, ``iteration``,
  ``status`` (``queued``, ``running``, ``waiting``, ``done``, ``failed``, ``cancelled``
  or ``skipped``), ``inputs``, ``text`` (what streamed in the attempt that counted),
  ``thinking`` (the model's thinking that streamed in it, kept apart from ``text``),
  ``output``, ``detail``, ``model``, ``usage``, ``usage_by_model``, ``cost_usd``,
  ``saved_usd``, ``provider_saved_usd``, ``priced`` (the event was priced when recorded: a
  null ``cost_usd`` then means "no price", not "priced before costs were"), ``cached``
  (``{source, run, usage}``) and ``reused`` (``{source, run}``), ``run`` being the source
  run's id when the source names one, ``child_runs`` (the runs of the flows the node
  called: a ``subflow``, an agent's ``flow:`` tools; ``[]`` for none), ``attempts``,
  ``retries``
  (``[{attempt, error, delay_s, takeover}]``),
  ``error``, ``cancelled``, ``continued`` (``on_error: continue`` sent the error on),
  ``started_ts``, ``ended_ts``, ``duration_s`` (the engine's own measure),
  ``progress`` (``{done, total}``), ``items`` (a map's items that sent ``node_item``
  events, null until one does: item index as text -> ``{status, node, text, error,
  usage}``, ``status`` being ``running``, ``done``, ``failed`` or ``cancelled``, ``node``
  the inner node its latest event was about, ``text`` what it streamed since its latest
  node started, ``usage``
  the item's tokens so far; and ``maps`` once a map among the item's nodes sends its own
  items' events: that map's node id -> its items, the same way, nesting again), ``turns``
  (an agent's recorded turns, ``[]`` for none: each
  ``{turn, content, stop_reason, model, usage, source, tools}``, ``content`` the reply's
  blocks, ``source`` the run it was carried over from ("run 7") or null, ``tools`` its
  answered tool calls ``[{tool_use_id, name, input, content, is_error, rejected,
  source}]``, ``rejected`` being ``{by, reason}`` when a person refused the call). Turns
  outlive a ``node_started`` of the same visit: an agent that runs again goes on with them.

Old logs read the same: no ``schema`` is schema 1, ``reused``/``cached`` may carry only a
``source`` text ("run 42") or only a ``run`` id, an event without ``iteration`` is of
iteration 1, and an event whose ``seq`` is not past the last one applied is ignored (a
live view may see an event twice). A ``run_started`` begins the state afresh. The fold
only reads: a visit the log left open stays ``running`` after ``run_finished`` (what a
page shows for it is the page's call), and nothing is priced here (``graphs`` knows no
prices; the web app prices what the log does not).

>>> log = fold([
...     {"seq": 1, "ts": 10.0, "type": "run_started", "inputs": {"q": "hi"}},
...     {"seq": 2, "ts": 10.0, "type": "node_started", "node": "ask", "iteration": 1},
...     {"seq": 3, "ts": 10.5, "type": "node_delta", "node": "ask", "iteration": 1,
...      "text": "hel"},
...     {"seq": 4, "ts": 10.6, "type": "node_delta", "node": "ask", "iteration": 1,
...      "text": "lo"},
... ])
>>> log.status, log.open_visits()
('running', [('ask', 1)])
>>> log.apply({"seq": 5, "ts": 11.0, "type": "node_finished", "node": "ask",
...     "iteration": 1, "output": {"text": "hello"}, "duration_s": 1.0,
...     "model": "m", "usage": {"input_tokens": 3, "output_tokens": 2}})
True
>>> log.apply({"seq": 5, "type": "node_failed", "node": "ask"})  # seen already
False
>>> visit = log.last_visit("ask")
>>> visit.status, visit.text, visit.output, log.usage
('done', 'hello', {'text': 'hello'}, {'input_tokens': 3, 'output_tokens': 2})
>>> log.apply({"seq": 6, "ts": 11.0, "type": "run_finished", "status": "succeeded",
...     "outputs": {"answer": "hello"}})
True
>>> state = log.to_json()
>>> state["status"], state["duration_s"], state["nodes"]["ask"][0]["started_ts"]
('succeeded', 1.0, 10.0)
>>> log.final_states(), log.open_visits()
({'ask': 'done'}, [])
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Event = Mapping[str, Any]
VisitKey = tuple[str, int]

# The schema a log without ``run_started.schema`` has (graphs.events.SCHEMA).
DEFAULT_SCHEMA = 1
# How old logs name a source run: the text Recorded.source and the web app write.
_SOURCE_RUN = re.compile(r"^run (\d+)$")
_SETTLED = frozenset({"done", "failed", "cancelled", "skipped"})
# A parked visit (node_waiting) is not settled, but is not running either.
_WAITING = "waiting"
# Events that show a visit has begun even when its node_started is not in the log.
_RUNNING = frozenset({"node_delta", "node_thinking", "node_progress", "node_item", "node_retrying"})
# An item's run_finished status as the item's status (a visit's words).
_ITEM_ENDED = {"succeeded": "done", "failed": "failed", "cancelled": "cancelled"}


# Usage figures that join a total with the first record that has some (graphs.llm.types).
_OPTIONAL_USAGE = (
    "thinking_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "cache_creation_1h_input_tokens",
)
# What a run_paused says (graphs.budget): the call's node and the run's figures.
_PAUSED = ("node", "iteration", "spent_usd", "remaining_usd", "needed_usd", "budget_usd")


def _zero() -> dict[str, int]:
    return {"input_tokens": 0, "output_tokens": 0}


def _add_usage(total: dict[str, int], usage: Any) -> None:
    """Adds a usage record in; ``thinking_tokens`` and the cache figures join the totals
    with the first that has some, so a log without them folds to the two figures it always
    had.

    >>> total = _zero()
    >>> _add_usage(total, {"input_tokens": 2, "output_tokens": 9, "thinking_tokens": 5})
    >>> _add_usage(total, {"input_tokens": 1, "output_tokens": 1,
    ...                    "cache_read_input_tokens": 900})
    >>> total
    {'input_tokens': 3, 'output_tokens': 10, 'thinking_tokens': 5, 'cache_read_input_tokens': 900}
    """
    if isinstance(usage, Mapping):
        for key in total:
            total[key] += int(usage.get(key) or 0)
        for key in _OPTIONAL_USAGE:
            figure = int(usage.get(key) or 0)
            if figure and key not in total:
                total[key] = figure


def _number(value: Any) -> float | None:
    """A recorded figure, or None when the event has none (or not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _run_ids(value: Any) -> list[int | str]:
    """A ``child_runs`` field: its ids (integers or text), anything else left out."""
    if not isinstance(value, list):
        return []
    return [
        v for v in value if isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))
    ]


def _object(value: Any) -> dict[str, Any]:
    """A copy of a JSON object field; anything else (missing, null, a list) reads as {}."""
    return dict(value) if isinstance(value, Mapping) else {}


def _plus(total: float | None, value: Any) -> float | None:
    figure = _number(value)
    if figure is None:
        return total
    return figure if total is None else total + figure


def origin(value: Any) -> dict[str, Any] | None:
    """A ``cached`` or ``reused`` field as the fold keeps it: ``{source, run}`` (and
    ``usage`` when it says what a cache hit saved), whichever form the log used.

    >>> origin({"source": "run 42"})
    {'source': 'run 42', 'run': 42}
    >>> origin({"run": 7, "usage": {"input_tokens": 1, "output_tokens": 2}})
    {'source': 'run 7', 'run': 7, 'usage': {'input_tokens': 1, 'output_tokens': 2}}
    >>> origin({"source": "cache of flow 3"}), origin(None), origin(True)
    ({'source': 'cache of flow 3', 'run': None}, None, {'source': '', 'run': None})
    """
    if not isinstance(value, Mapping):
        if not value:
            return None
        return {"source": value if isinstance(value, str) else "", "run": None}
    source = value.get("source")
    run = value.get("run")
    if isinstance(run, bool) or not isinstance(run, int):
        run = None
    source = str(source) if source else ""
    if run is None:
        match = _SOURCE_RUN.match(source)
        run = int(match[1]) if match else None
    elif not source:
        source = f"run {run}"
    kept: dict[str, Any] = {"source": source, "run": run}
    if "usage" in value:
        kept["usage"] = value["usage"]
    return kept


@dataclass
class Visit:
    """One execution of a node (one iteration of it), folded from its events."""

    node: str
    iteration: int
    status: str = "queued"
    inputs: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    detail: dict[str, Any] | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None
    usage_by_model: dict[str, Any] | None = None
    cost_usd: float | None = None
    saved_usd: float | None = None
    provider_saved_usd: float | None = None
    priced: bool = False
    cached: dict[str, Any] | None = None
    reused: dict[str, Any] | None = None
    child_runs: list[int | str] = field(default_factory=list)
    attempts: int = 1
    retries: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    cancelled: bool = False
    continued: bool = False
    started_ts: float | None = None
    ended_ts: float | None = None
    duration_s: float | None = None
    progress: dict[str, Any] | None = None
    items: dict[str, dict[str, Any]] | None = None
    turns: list[dict[str, Any]] = field(default_factory=list)
    # Streamed pieces, joined when read: a long stream must not cost quadratic copying.
    _parts: list[str] = field(default_factory=list, repr=False)
    _thought: list[str] = field(default_factory=list, repr=False)

    @property
    def key(self) -> VisitKey:
        return (self.node, self.iteration)

    @property
    def text(self) -> str:
        """What the node streamed in the attempt that counted (a retry starts it over)."""
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def thinking(self) -> str:
        """The model's thinking streamed in the attempt that counted."""
        if len(self._thought) > 1:
            self._thought[:] = ["".join(self._thought)]
        return self._thought[0] if self._thought else ""

    @property
    def settled(self) -> bool:
        return self.status in _SETTLED

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "iteration": self.iteration,
            "status": self.status,
            "inputs": self.inputs,
            "text": self.text,
            "thinking": self.thinking,
            "output": self.output,
            "detail": self.detail,
            "model": self.model,
            "usage": self.usage,
            "usage_by_model": self.usage_by_model,
            "cost_usd": self.cost_usd,
            "saved_usd": self.saved_usd,
            "provider_saved_usd": self.provider_saved_usd,
            "priced": self.priced,
            "cached": self.cached,
            "reused": self.reused,
            "child_runs": list(self.child_runs),
            "attempts": self.attempts,
            "retries": [dict(retry) for retry in self.retries],
            "error": self.error,
            "cancelled": self.cancelled,
            "continued": self.continued,
            "started_ts": self.started_ts,
            "ended_ts": self.ended_ts,
            "duration_s": self.duration_s,
            "progress": self.progress,
            "items": (
                None
                if self.items is None
                else {index: _item_copy(item) for index, item in self.items.items()}
            ),
            "turns": [
                {**turn, "tools": [dict(tool) for tool in turn["tools"]]} for turn in self.turns
            ],
        }


class RunLog:
    """A run's state, folded from its events one ``apply`` at a time."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.status = "queued"
        self.schema = DEFAULT_SCHEMA
        self.inputs: dict[str, Any] = {}
        self.outputs: dict[str, Any] = {}
        self.error = ""
        self.usage = _zero()
        self.usage_by_model: dict[str, dict[str, int]] = {}
        self.cost_usd: float | None = None
        self.saved_usd: float | None = None
        self.provider_saved_usd: float | None = None
        self.cache_hits = 0
        self.started_ts: float | None = None
        self.finished_ts: float | None = None
        self.duration_s: float | None = None
        self.last_seq = 0
        self.last_ts: float | None = None
        self.budget_usd: float | None = None
        self.paused: dict[str, Any] | None = None
        self._visits: dict[VisitKey, Visit] = {}  # in the order first seen
        self._nodes: dict[str, dict[int, Visit]] = {}
        self._last: dict[str, Visit] = {}  # each node's visit its latest event was about
        # How many visits are open (begun, not ended) and how many of those wait: the run
        # waits when they are the same (and not zero), counted so no event scans them all.
        self._open = 0
        self._waits = 0

    # Reading ---------------------------------------------------------------------

    def nodes(self) -> list[str]:
        """The nodes the log names, in the order it first named them."""
        return list(self._nodes)

    def visits(self, node: str | None = None) -> list[Visit]:
        """One node's visits by iteration; without ``node``, all, in the order first seen."""
        if node is None:
            return list(self._visits.values())
        by_iteration = self._nodes.get(node, {})
        return [by_iteration[i] for i in sorted(by_iteration)]

    def last_visit(self, node: str) -> Visit | None:
        """The visit of ``node`` that its latest event was about."""
        return self._last.get(node)

    def open_visits(self) -> list[VisitKey]:
        """The visits begun and not ended (finished, failed or skipped), in the order seen.

        >>> fold([{"type": "node_started", "node": "a"},
        ...       {"type": "node_started", "node": "b", "iteration": 2},
        ...       {"type": "node_finished", "node": "a"}]).open_visits()
        [('b', 2)]
        """
        return [visit.key for visit in self._visits.values() if not visit.settled]

    def final_states(self) -> dict[str, str]:
        """Each node's state as its latest event left it: done, failed, cancelled, skipped,
        waiting (parked until someone answers) or running (begun, not ended). A node the
        log never names is absent.

        >>> fold([{"type": "node_started", "node": "a"},
        ...       {"type": "node_failed", "node": "a", "error": "x", "continued": True},
        ...       {"type": "node_progress", "node": "m", "done": 1, "total": 3}]).final_states()
        {'a': 'failed', 'm': 'running'}
        """
        return {
            node: visit.status if visit.settled or visit.status == _WAITING else "running"
            for node, visit in self._last.items()
        }

    def to_json(self) -> dict[str, Any]:
        """The whole state as JSON (the module docstring describes it)."""
        return {
            "status": self.status,
            "schema": self.schema,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "error": self.error,
            "usage": dict(self.usage),
            "usage_by_model": {model: dict(usage) for model, usage in self.usage_by_model.items()},
            "cost_usd": self.cost_usd,
            "saved_usd": self.saved_usd,
            "provider_saved_usd": self.provider_saved_usd,
            "cache_hits": self.cache_hits,
            "started_ts": self.started_ts,
            "finished_ts": self.finished_ts,
            "duration_s": self.duration_s,
            "last_seq": self.last_seq,
            "last_ts": self.last_ts,
            "budget_usd": self.budget_usd,
            "paused": None if self.paused is None else dict(self.paused),
            "nodes": {node: [v.to_json() for v in self.visits(node)] for node in self._nodes},
        }

    # Folding ---------------------------------------------------------------------

    def apply(self, event: Event) -> bool:
        """Fold one event in; False when its ``seq`` was applied already (nothing changes)."""
        seq = event.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            if seq <= self.last_seq:
                return False
            self.last_seq = seq
        ts = _number(event.get("ts"))
        if ts is not None:
            self.last_ts = ts
        kind = event.get("type")
        node = event.get("node")
        if kind == "run_started":
            self._run_started(event, ts)
        elif kind == "run_finished":
            self._run_finished(event, ts)
        elif kind == "run_paused":
            self.paused = {key: event.get(key) for key in _PAUSED}
            self.budget_usd = _number(event.get("budget_usd"))
        elif kind == "run_resumed":
            self.paused = None
            self.budget_usd = _number(event.get("budget_usd"))
        elif isinstance(node, str):
            self._node_event(kind, node, event, ts)
        return True

    def _run_started(self, event: Event, ts: float | None) -> None:
        # A log begins here: anything before it belonged to no run.
        last_seq = self.last_seq
        self._reset()
        self.last_seq, self.last_ts = last_seq, ts
        self.status = "running"
        self.schema = event.get("schema") or DEFAULT_SCHEMA
        self.inputs = _object(event.get("inputs"))
        self.started_ts = ts

    def _run_finished(self, event: Event, ts: float | None) -> None:
        self.status = event.get("status") or "failed"
        self.outputs = _object(event.get("outputs"))
        self.error = str(event.get("error") or "")
        self.finished_ts = ts
        # The run's own figures count what node events cannot show (a map's items,
        # failed attempts); a log from before they were recorded keeps the nodes' sums.
        if isinstance(event.get("usage"), Mapping):
            self.usage = _zero()
            _add_usage(self.usage, event["usage"])
        if isinstance(event.get("usage_by_model"), Mapping):
            self.usage_by_model = {}
            for model, usage in event["usage_by_model"].items():
                _add_usage(self.usage_by_model.setdefault(model, _zero()), usage)
        if "cost_usd" in event:
            self.cost_usd = _number(event["cost_usd"])
        if "saved_usd" in event:
            self.saved_usd = _number(event["saved_usd"])
        if "provider_saved_usd" in event:
            self.provider_saved_usd = _number(event["provider_saved_usd"])
        hits = event.get("cache_hits")
        if isinstance(hits, int) and not isinstance(hits, bool):
            self.cache_hits = hits
        duration = _number(event.get("duration_s"))
        if duration is None and ts is not None and self.started_ts is not None:
            duration = ts - self.started_ts
        self.duration_s = duration

    def _visit(self, node: str, iteration: int) -> Visit:
        key = (node, iteration)
        visit = self._visits.get(key)
        if visit is None:
            visit = self._visits[key] = Visit(node, iteration)
            self._nodes.setdefault(node, {})[iteration] = visit
            self._open += 1
        self._last[node] = visit
        return visit

    def _node_event(self, kind: Any, node: str, event: Event, ts: float | None) -> None:
        iteration = event.get("iteration")
        if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 1:
            iteration = 1
        visit = self._visit(node, iteration)
        was = visit.status
        self._visit_event(kind, visit, event, ts)
        if visit.status != was:
            self._open += (was in _SETTLED) - (visit.status in _SETTLED)
            self._waits += (visit.status == _WAITING) - (was == _WAITING)
        if self.status in ("running", _WAITING):
            self.status = _WAITING if self._waits and self._waits == self._open else "running"

    def _visit_event(self, kind: Any, visit: Visit, event: Event, ts: float | None) -> None:
        if kind == "node_started":
            # Again after a takeover: the node runs anew elsewhere, its stream too.
            visit.status = "running"
            visit.inputs = _object(event.get("inputs"))
            visit.started_ts = ts
            visit.ended_ts = None
            visit._parts.clear()
            visit._thought.clear()
            visit.items = None
        elif kind == "node_delta":
            visit._parts.append(str(event.get("text") or ""))
        elif kind == "node_thinking":
            visit._thought.append(str(event.get("text") or ""))
        elif kind == "node_progress":
            visit.progress = {"done": event.get("done"), "total": event.get("total")}
        elif kind == "node_item":
            _item_event(visit, event)
        elif kind == "node_retrying":
            visit._parts.clear()
            visit._thought.clear()
            visit.items = None
            visit.retries.append(
                {
                    "attempt": event.get("attempt"),
                    "error": str(event.get("error") or ""),
                    "delay_s": event.get("delay_s") or 0,
                    "takeover": bool(event.get("takeover")),
                }
            )
            visit.attempts = len(visit.retries) + 1
        elif kind == "node_finished":
            self._node_finished(visit, event, ts)
        elif kind == "node_failed":
            visit.cancelled = bool(event.get("cancelled"))
            visit.status = "cancelled" if visit.cancelled else "failed"
            visit.continued = bool(event.get("continued"))
            visit.error = str(event.get("error") or "")
            visit.ended_ts = ts
        elif kind == "node_skipped":
            visit.status = "skipped"
            visit.ended_ts = ts
        elif kind == "node_waiting":
            # What it waits for shows as its detail until its answer's node_finished.
            visit.status = _WAITING
            visit.detail = {"wait": _object(event.get("wait"))}
            if visit.detail["wait"].get("kind") == "breakpoint":
                # Paused before it starts: what it would run on are its inputs so far.
                visit.inputs = _object(visit.detail["wait"].get("inputs"))
        elif kind == "node_resumed":
            visit.status = "running"
            if "inputs" in event:  # a breakpoint's answer: the inputs, maybe edited
                visit.inputs = _object(event.get("inputs"))
        elif kind == "agent_turn":
            _agent_turn(visit, event)
        elif kind == "agent_tool":
            _agent_tool(visit, event)
        elif kind == "batch_sent":
            pass  # for the node to find again (graphs.llm.batch); its wait shows the batch
        if kind in _RUNNING and visit.status == "queued":
            visit.status = "running"

    def _node_finished(self, visit: Visit, event: Event, ts: float | None) -> None:
        visit.status = "done"
        visit.error = ""
        visit.output = _object(event.get("output"))
        visit.detail = dict(event["detail"]) if isinstance(event.get("detail"), Mapping) else None
        visit.duration_s = _number(event.get("duration_s"))
        visit.ended_ts = ts
        if isinstance(event.get("attempts"), int):
            visit.attempts = max(visit.attempts, event["attempts"])
        model = event.get("model")
        visit.model = model if isinstance(model, str) else None
        usage = event.get("usage")
        visit.usage = dict(usage) if isinstance(usage, Mapping) else None
        by_model = event.get("usage_by_model")
        visit.usage_by_model = dict(by_model) if isinstance(by_model, Mapping) else None
        visit.priced = "cost_usd" in event or "saved_usd" in event
        visit.cost_usd = _number(event.get("cost_usd"))
        visit.saved_usd = _number(event.get("saved_usd"))
        visit.provider_saved_usd = _number(event.get("provider_saved_usd"))
        visit.cached = origin(event.get("cached"))
        visit.reused = origin(event.get("reused"))
        visit.child_runs = _run_ids(event.get("child_runs"))
        # The run's running totals, until its run_finished gives its own.
        _add_usage(self.usage, usage)
        if visit.usage_by_model:
            for name, of_model in visit.usage_by_model.items():
                _add_usage(self.usage_by_model.setdefault(name, _zero()), of_model)
        elif visit.model is not None and visit.usage is not None:
            _add_usage(self.usage_by_model.setdefault(visit.model, _zero()), usage)
        self.cost_usd = _plus(self.cost_usd, event.get("cost_usd"))
        self.saved_usd = _plus(self.saved_usd, event.get("saved_usd"))
        self.provider_saved_usd = _plus(self.provider_saved_usd, event.get("provider_saved_usd"))
        if visit.cached is not None:
            self.cache_hits += 1


def _item_copy(item: dict[str, Any]) -> dict[str, Any]:
    copied = {**item, "usage": dict(item["usage"])}
    if "maps" in item:
        copied["maps"] = {
            node: {index: _item_copy(inner) for index, inner in items.items()}
            for node, items in item["maps"].items()
        }
    return copied


def _item_event(visit: Visit, event: Event) -> None:
    """Fold a map's ``node_item`` event into its item's state.

    >>> visit = Visit("m", 1)
    >>> for e in [{"item": 0, "event": "run_started"},
    ...           {"item": 0, "event": "node_started", "inner": "ask"},
    ...           {"item": 0, "event": "node_delta", "inner": "ask", "text": "hi"},
    ...           {"item": 0, "event": "run_finished", "status": "succeeded"}]:
    ...     _item_event(visit, e)
    >>> visit.items["0"]["status"], visit.items["0"]["text"]
    ('done', 'hi')
    """
    if visit.items is None:
        visit.items = {}
    _fold_item(visit.items, event)


def _fold_item(items: dict[str, dict[str, Any]], event: Event) -> None:
    """Fold a ``node_item`` event (or one ``nested`` in another) into ``items``.

    An inner map's item events fold into ``maps`` of the item they ran in; that map
    starting again (a new visit in the item) starts its items afresh.

    >>> items = {}
    >>> _fold_item(items, {"item": 1, "event": "node_item", "inner": "deep",
    ...     "nested": {"item": 0, "event": "node_delta", "inner": "ask", "text": "a"}})
    >>> items["1"]["maps"]["deep"]["0"]["text"], items["1"]["node"]
    ('a', 'deep')
    >>> _fold_item(items, {"item": 1, "event": "node_started", "inner": "deep"})
    >>> items["1"]["maps"]
    {}
    """
    index = event.get("item")
    if isinstance(index, bool) or not isinstance(index, int):
        return
    item = items.get(str(index))
    if item is None:
        item = items[str(index)] = {
            "status": "running",
            "node": None,
            "text": "",
            "error": "",
            "usage": _zero(),
        }
    kind = event.get("event")
    inner = event.get("inner")
    if isinstance(inner, str):
        item["node"] = inner
    if kind == "node_started":
        item["text"] = ""
        if isinstance(inner, str) and "maps" in item:
            item["maps"].pop(inner, None)
    if kind == "node_item":
        nested = event.get("nested")
        if isinstance(inner, str) and isinstance(nested, Mapping):
            maps = item.setdefault("maps", {})
            _fold_item(maps.setdefault(inner, {}), nested)
    elif kind == "node_delta":
        item["text"] += str(event.get("text") or "")
    elif kind == "node_finished":
        _add_usage(item["usage"], event.get("usage"))
    elif kind == "node_failed":
        item["error"] = str(event.get("error") or "")
    elif kind == "run_finished":
        item["status"] = _ITEM_ENDED.get(str(event.get("status")), "failed")
        if event.get("error"):
            item["error"] = str(event["error"])


def _turn_of(visit: Visit, number: int) -> dict[str, Any]:
    for turn in visit.turns:
        if turn["turn"] == number:
            return turn
    turn = {
        "turn": number,
        "content": [],
        "stop_reason": None,
        "model": None,
        "usage": None,
        "source": None,
        "tools": [],
    }
    visit.turns.append(turn)
    return turn


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _agent_turn(visit: Visit, event: Event) -> None:
    """An agent's reply, by its turn (recorded again, it replaces what the turn held).

    >>> visit = Visit("a", 1)
    >>> _agent_turn(visit, {"turn": 1, "content": [{"type": "text", "text": "hi"}],
    ...     "stop_reason": "end_turn", "model": "m", "usage": {"input_tokens": 1}})
    >>> visit.turns[0]["content"], visit.turns[0]["tools"]
    ([{'type': 'text', 'text': 'hi'}], [])
    """
    number = event.get("turn")
    if isinstance(number, bool) or not isinstance(number, int):
        return
    turn = _turn_of(visit, number)
    content = event.get("content")
    turn["content"] = list(content) if isinstance(content, list) else []
    turn["stop_reason"] = _text_or_none(event.get("stop_reason"))
    turn["model"] = _text_or_none(event.get("model"))
    usage = event.get("usage")
    turn["usage"] = dict(usage) if isinstance(usage, Mapping) else None
    turn["source"] = _text_or_none(event.get("source"))


def _agent_tool(visit: Visit, event: Event) -> None:
    """An agent's answered tool call, in its turn, by its ``tool_use_id``.

    >>> visit = Visit("a", 1)
    >>> _agent_tool(visit, {"turn": 2, "tool_use_id": "t", "name": "calc", "input": {},
    ...     "content": "no", "is_error": True, "rejected": {"by": {"user": "bob"}}})
    >>> visit.turns[0]["turn"], visit.turns[0]["tools"][0]["rejected"]
    (2, {'by': {'user': 'bob'}})
    """
    number = event.get("turn")
    use_id = event.get("tool_use_id")
    if isinstance(number, bool) or not isinstance(number, int) or not isinstance(use_id, str):
        return
    tools = _turn_of(visit, number)["tools"]
    rejected = event.get("rejected")
    tool = {
        "tool_use_id": use_id,
        "name": str(event.get("name") or ""),
        "input": event.get("input"),
        "content": str(event.get("content") or ""),
        "is_error": bool(event.get("is_error")),
        "rejected": dict(rejected) if isinstance(rejected, Mapping) else None,
        "source": _text_or_none(event.get("source")),
    }
    for at, known in enumerate(tools):
        if known["tool_use_id"] == use_id:
            tools[at] = tool
            return
    tools.append(tool)


def fold(events: Iterable[Event]) -> RunLog:
    """A whole log folded, in order.

    >>> fold([]).to_json()["status"]
    'queued'
    """
    log = RunLog()
    for event in events:
        log.apply(event)
    return log
