"""Two runs of one flow side by side: inputs, each node's outcome and output, totals, and
what changed in the graph between them.

Built from the recorded events only (the ones that end a node or a run), so comparing
never calls a model. ``compare_runs`` loads them; ``build_comparison`` only reads what
it is given.

>>> segments = text_diff("the cat sat", "the dog sat")
>>> segments
[('equal', 'the '), ('delete', 'cat'), ('insert', 'dog'), ('equal', ' sat')]
>>> output_text({"text": "hello"}), output_text({"value": 3})
('hello', '3')
>>> print(output_text({"a": 1, "b": "x"}))
{
  "a": 1,
  "b": "x"
}
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from graphs.diff import GraphDiff, NodeChange, diff_graphs
from graphs.log import Visit, fold
from webapp.core.format import pretty
from webapp.runs.access import run_for_viewer
from webapp.runs.models import Run, RunEvent
from webapp.runs.pricing import cost_usd, format_usd, usage_cost_usd

# Only the events that settle a node or a run; deltas (most of a log) are never read.
COMPARED_EVENTS = ("run_finished", "node_finished", "node_failed", "node_skipped")
# Outputs longer than this are diffed on their beginning only, so one huge output cannot
# make the page slow; the page says so.
MAX_DIFF_CHARS = 20_000
# Word-level diffs read best for prose; past this many tokens a side, lines are cheaper.
MAX_WORD_TOKENS = 4_000

Op = Literal["equal", "insert", "delete"]
_TOKENS = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)


@dataclass
class NodeOutcome:
    """What one node did in one run (all its iterations together)."""

    in_graph: bool
    # done | failed | cancelled | skipped | not run | absent (not in this run's graph)
    status: str
    output: dict[str, Any] | None = None
    error: str = ""
    iterations: int = 0
    duration_s: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal | None = None
    # A model was used but has no price: the cost is unknown, not zero.
    unpriced: bool = False
    model: str | None = None
    cached: Mapping[str, Any] | None = None
    saved_usd: Decimal | None = None
    reused: Mapping[str, Any] | None = None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def has_figures(self) -> bool:
        return bool(self.duration_s is not None or self.model or self.iterations > 1)

    @property
    def cost_text(self) -> str:
        if self.unpriced and self.cost_usd is None:
            return "unpriced"
        return "" if self.cost_usd is None else format_usd(self.cost_usd)

    @property
    def saved_text(self) -> str:
        return "" if self.saved_usd is None else format_usd(self.saved_usd)

    @property
    def duration_text(self) -> str:
        return seconds_text(self.duration_s)

    def as_dict(self) -> dict[str, Any]:
        return {
            "in_graph": self.in_graph,
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "iterations": self.iterations,
            "duration_s": self.duration_s,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
            "model": self.model,
            "cost_usd": _float(self.cost_usd),
            "cached": self.cached is not None,
            "saved_usd": _float(self.saved_usd),
            "reused": self.reused is not None,
            "reused_from": (self.reused or {}).get("source"),
        }


@dataclass
class NodeRow:
    id: str
    label: str
    type: str
    a: NodeOutcome
    b: NodeOutcome
    # From the graph diff: added | removed | changed, or "" when the node is the same.
    change: str = ""
    same_output: bool = True
    # (op, text) pieces of the output text from a to b; None when either side has none.
    diff: list[tuple[Op, str]] | None = None
    text_a: str = ""
    text_b: str = ""
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "type": self.type,
            "change": self.change,
            "same_output": self.same_output,
            "a": self.a.as_dict(),
            "b": self.b.as_dict(),
            "output_diff": None if self.diff is None else [list(piece) for piece in self.diff],
            "output_diff_truncated": self.truncated,
        }


@dataclass
class InputRow:
    name: str
    a: Any
    b: Any
    in_a: bool
    in_b: bool
    equal: bool
    text_a: str = ""
    text_b: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "equal": self.equal}
        if self.in_a:
            out["a"] = self.a
        if self.in_b:
            out["b"] = self.b
        return out


@dataclass
class RunTotals:
    run: Run
    status: str
    version: int
    duration_s: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal | None
    saved_usd: Decimal
    cache_hits: int

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def cost_text(self) -> str:
        return format_usd(self.cost_usd)

    @property
    def saved_text(self) -> str:
        return format_usd(self.saved_usd) if self.saved_usd else ""

    @property
    def duration_text(self) -> str:
        return seconds_text(self.duration_s)

    def as_dict(self) -> dict[str, Any]:
        run = self.run
        return {
            "id": run.pk,
            "status": self.status,
            "kind": run.kind,
            "parent": run.parent_id,
            "flow_version": self.version,
            "edited_graph": run.graph_override is not None,
            "started_by": run.started_by.username if run.started_by else None,
            "created": run.created.isoformat(),
            "duration_s": self.duration_s,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
            "cost_usd": _float(self.cost_usd),
            "saved_usd": _float(self.saved_usd),
            "cache_hits": self.cache_hits,
            "error": run.error,
        }


@dataclass
class Comparison:
    a: RunTotals
    b: RunTotals
    inputs: list[InputRow]
    nodes: list[NodeRow]
    # None when both runs ran the very same graph; else the diff from a's to b's.
    graph_diff: GraphDiff | None = None
    deltas: dict[str, str] = field(default_factory=dict)

    @property
    def sides(self) -> tuple[RunTotals, RunTotals]:
        return (self.a, self.b)

    @property
    def same_inputs(self) -> bool:
        return all(row.equal for row in self.inputs)

    @property
    def changed_outputs(self) -> int:
        return sum(not row.same_output for row in self.nodes)

    def as_dict(self) -> dict[str, Any]:
        """JSON for the API: plain data, no HTML; output diffs as (op, text) pieces."""
        return {
            "a": self.a.as_dict(),
            "b": self.b.as_dict(),
            "flow": self.a.run.flow_id,
            "same_graph": self.graph_diff is None,
            "graph_diff": None if self.graph_diff is None else self.graph_diff.as_dict(),
            "same_inputs": self.same_inputs,
            "inputs": [row.as_dict() for row in self.inputs],
            "nodes": [row.as_dict() for row in self.nodes],
        }


class CompareRefused(Exception):
    """Two runs that cannot be compared, with the reason to show."""


def runs_to_compare(user, a_id: int | None, b_id: int | None) -> tuple[Run, Run]:
    """Both runs if the user may see them (else Http404) and they can be compared."""
    if a_id is None or b_id is None:
        raise CompareRefused("Pick two runs to compare: /runs/compare/?a=<run id>&b=<run id>.")
    # Access first: a stranger learns nothing, not even that two ids are of other flows.
    run_a = run_for_viewer(user, a_id)
    run_b = run_for_viewer(user, b_id)
    if run_a.flow_id != run_b.flow_id:
        raise CompareRefused(
            f"Run #{run_a.pk} and run #{run_b.pk} belong to different flows "
            f"({run_a.flow.name} and {run_b.flow.name}); only runs of the same flow compare."
        )
    return run_a, run_b


def compare_runs(a: Run, b: Run) -> Comparison:
    """Load both runs' settling events (one query) and compare. Access is the caller's job."""
    events: dict[int, list[dict[str, Any]]] = {a.pk: [], b.pk: []}
    rows = (
        RunEvent.objects.filter(run_id__in={a.pk, b.pk}, type__in=COMPARED_EVENTS)
        .order_by("run_id", "seq")
        .values_list("run_id", "payload")
    )
    for run_id, payload in rows:
        events[run_id].append(payload)
    return build_comparison(a, b, events[a.pk], events[b.pk])


def build_comparison(
    a: Run, b: Run, events_a: Iterable[Mapping[str, Any]], events_b: Iterable[Mapping[str, Any]]
) -> Comparison:
    graph_a, graph_b = a.graph, b.graph
    graph_diff = None if graph_a == graph_b else diff_graphs(graph_a, graph_b)
    events_a, events_b = list(events_a), list(events_b)
    outcomes_a = node_outcomes(graph_a, events_a)
    outcomes_b = node_outcomes(graph_b, events_b)
    totals_a = run_totals(a, events_a, outcomes_a.values())
    totals_b = run_totals(b, events_b, outcomes_b.values())
    changes = _change_by_node(graph_diff)
    nodes = []
    for node in union_in_drawing_order(graph_a, graph_b):
        row = NodeRow(
            id=node["id"],
            label=node.get("label") or node["id"],
            type=node.get("type", ""),
            a=outcomes_a.get(node["id"], NodeOutcome(in_graph=False, status="absent")),
            b=outcomes_b.get(node["id"], NodeOutcome(in_graph=False, status="absent")),
            change=changes.get(node["id"], ""),
        )
        _fill_output_diff(row)
        nodes.append(row)
    return Comparison(
        a=totals_a,
        b=totals_b,
        inputs=input_rows(a.inputs, b.inputs),
        nodes=nodes,
        graph_diff=graph_diff,
        deltas=_deltas(totals_a, totals_b),
    )


def node_outcomes(
    graph: Mapping[str, Any], events: Iterable[Mapping[str, Any]]
) -> dict[str, NodeOutcome]:
    """Each node of the graph with its visits (graphs.log) summed up, the last deciding."""
    outcomes = {
        node["id"]: NodeOutcome(in_graph=True, status="not run") for node in graph.get("nodes", [])
    }
    log = fold(events)
    for node in log.nodes():
        # A node the graph lacks (a damaged log) must not break the page.
        outcome = outcomes.setdefault(node, NodeOutcome(in_graph=False, status="not run"))
        for visit in log.visits(node):
            _add_visit(outcome, visit)
    return outcomes


def _add_visit(outcome: NodeOutcome, visit: Visit) -> None:
    if visit.status == "skipped":
        outcome.status = "skipped"
        return
    if visit.status in ("failed", "cancelled"):
        outcome.iterations += 1
        outcome.status = visit.status
        outcome.error = visit.error
        return
    if visit.status != "done":
        return
    outcome.iterations += 1
    outcome.status = "done"
    outcome.error = ""
    outcome.output = visit.output or {}
    if visit.duration_s is not None:
        outcome.duration_s = (outcome.duration_s or 0.0) + float(visit.duration_s)
    usage = visit.usage or {}
    outcome.input_tokens += int(usage.get("input_tokens") or 0)
    outcome.output_tokens += int(usage.get("output_tokens") or 0)
    model = visit.model
    if model:
        outcome.model = model
        # The recorder prices events as they are written; older runs are priced now.
        if visit.priced:
            cost = None if visit.cost_usd is None else Decimal(str(visit.cost_usd))
        else:
            cost = cost_usd(model, usage)
        if cost is None:
            outcome.unpriced = True
        else:
            outcome.cost_usd = (outcome.cost_usd or Decimal(0)) + cost
    if visit.cached is not None:
        outcome.cached = visit.cached
        saved = visit.saved_usd
        if saved is None and not visit.priced and model:
            saved = cost_usd(model, visit.cached.get("usage"))
        if saved is not None:
            outcome.saved_usd = (outcome.saved_usd or Decimal(0)) + Decimal(str(saved))
    if visit.reused is not None:
        outcome.reused = visit.reused


def run_totals(
    run: Run, events: list[Mapping[str, Any]], outcomes: Iterable[NodeOutcome]
) -> RunTotals:
    finished = next((e for e in reversed(events) if e.get("type") == "run_finished"), {})
    duration = run.duration_s
    if duration is None and run.started_at is not None and run.finished_at is not None:
        duration = (run.finished_at - run.started_at).total_seconds()
    cost: Decimal | None = run.cost_usd
    if not cost and (run.input_tokens or run.output_tokens):
        # Recorded before runs were priced: price the usage now, as the nodes are.
        if finished.get("usage_by_model"):
            cost = usage_cost_usd(finished["usage_by_model"])
        else:
            costs = [o.cost_usd for o in outcomes if o.cost_usd is not None]
            cost = sum(costs, Decimal(0)) if costs else None
    return RunTotals(
        run=run,
        status=run.status,
        version=run.flow_version.number,
        duration_s=duration,
        input_tokens=run.input_tokens,
        output_tokens=run.output_tokens,
        cost_usd=cost,
        saved_usd=run.saved_usd,
        cache_hits=run.cache_hits,
    )


def input_rows(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[InputRow]:
    """Every input of either run, a's order first; equal means the same JSON value."""
    names = list(a) + [name for name in b if name not in a]
    rows = []
    for name in names:
        in_a, in_b = name in a, name in b
        value_a, value_b = a.get(name), b.get(name)
        rows.append(
            InputRow(
                name=name,
                a=value_a,
                b=value_b,
                in_a=in_a,
                in_b=in_b,
                equal=in_a and in_b and _canonical(value_a) == _canonical(value_b),
                text_a=pretty(value_a) if in_a else "",
                text_b=pretty(value_b) if in_b else "",
            )
        )
    return rows


def union_in_drawing_order(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The nodes of both graphs once each, left to right then top to bottom, as drawn.

    A node in both is placed (and named) as in b, the later run's view of it.
    """
    nodes: dict[str, dict[str, Any]] = {}
    for node in [*a.get("nodes", []), *b.get("nodes", [])]:
        nodes[node["id"]] = node
    order = {node_id: index for index, node_id in enumerate(nodes)}

    def where(node: dict[str, Any]) -> tuple[float, float, int]:
        position = node.get("position") or {}
        return (position.get("x", 0), position.get("y", 0), order[node["id"]])

    return sorted(nodes.values(), key=where)


def output_text(output: Mapping[str, Any] | None) -> str:
    """A node's output as text to diff: its one text port as is, else indented JSON."""
    if not output:
        return ""
    if len(output) == 1:
        (value,) = output.values()
        return pretty(value)
    return pretty(dict(output))


def text_diff(a: str, b: str) -> list[tuple[Op, str]]:
    """The pieces that turn `a` into `b`: words for prose, lines for long texts."""
    tokens_a, tokens_b = _TOKENS.findall(a), _TOKENS.findall(b)
    if max(len(tokens_a), len(tokens_b)) > MAX_WORD_TOKENS:
        tokens_a, tokens_b = a.splitlines(keepends=True), b.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(None, tokens_a, tokens_b, autojunk=False)
    pieces: list[tuple[Op, str]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            _append(pieces, "equal", "".join(tokens_a[i1:i2]))
            continue
        if tag in ("delete", "replace"):
            _append(pieces, "delete", "".join(tokens_a[i1:i2]))
        if tag in ("insert", "replace"):
            _append(pieces, "insert", "".join(tokens_b[j1:j2]))
    return pieces


def _append(pieces: list[tuple[Op, str]], op: Op, text: str) -> None:
    if not text:
        return
    if pieces and pieces[-1][0] == op:
        pieces[-1] = (op, pieces[-1][1] + text)
    else:
        pieces.append((op, text))


def _fill_output_diff(row: NodeRow) -> None:
    row.text_a, row.text_b = output_text(row.a.output), output_text(row.b.output)
    if row.a.output is None or row.b.output is None:
        row.same_output = row.a.output is None and row.b.output is None
        return
    row.same_output = _canonical(row.a.output) == _canonical(row.b.output)
    if row.same_output:
        return
    a, b = row.text_a, row.text_b
    row.truncated = max(len(a), len(b)) > MAX_DIFF_CHARS
    row.diff = text_diff(a[:MAX_DIFF_CHARS], b[:MAX_DIFF_CHARS])


def _change_by_node(diff: GraphDiff | None) -> dict[str, str]:
    if diff is None:
        return {}
    changes = {node.id: "added" for node in diff.added}
    changes.update({node.id: "removed" for node in diff.removed})
    changes.update({node.id: "changed" for node in diff.changed})
    return changes


def _deltas(a: RunTotals, b: RunTotals) -> dict[str, str]:
    """b minus a, signed, for the totals table (empty when a side is unknown)."""
    deltas = {}
    if a.duration_s is not None and b.duration_s is not None:
        change_s = b.duration_s - a.duration_s
        deltas["duration"] = ("+" if change_s >= 0 else "-") + seconds_text(abs(change_s))
    deltas["tokens"] = f"{b.tokens - a.tokens:+,}"
    if a.cost_usd is not None and b.cost_usd is not None:
        change = b.cost_usd - a.cost_usd
        deltas["cost"] = ("+" if change >= 0 else "-") + format_usd(abs(change))
    return deltas


def seconds_text(seconds: float | None) -> str:
    """A duration for people.

    >>> seconds_text(0.0042), seconds_text(2.25), seconds_text(75), seconds_text(None)
    ('4 ms', '2.25 s', '1 min 15 s', '')
    """
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


@dataclass
class ChangeLine:
    """One changed key of a node as the page shows it: a word diff for text, else both values."""

    key: str
    kind: str
    before: str
    after: str
    pieces: list[tuple[Op, str]] | None


def change_lines(diff: GraphDiff | None) -> list[tuple[NodeChange, list[ChangeLine]]]:
    """Each changed node with its key changes, ready to render."""
    if diff is None:
        return []
    out = []
    for node in diff.changed:
        lines = []
        for change in node.changes:
            text = isinstance(change.before, str) and isinstance(change.after, str)
            lines.append(
                ChangeLine(
                    key=change.key,
                    kind=change.kind,
                    before="" if change.kind == "added" else pretty(change.before),
                    after="" if change.kind == "removed" else pretty(change.after),
                    pieces=text_diff(change.before, change.after)
                    if text and change.kind == "changed"
                    else None,
                )
            )
        out.append((node, lines))
    return out
