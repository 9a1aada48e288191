"""A run's timeline as SVG geometry: a Gantt chart of node visits and a token plot.

Built from the recorded events only; templates/runs/_timeline.html draws it. Time runs
left to right on one scale for both charts: x = x0 + (ts - t0) * scale, in the SVG's own
units, which the template also writes into data- attributes so that the replay player can
move a cursor line to any event's `ts` without asking the server.

>>> events = [
...     {"type": "run_started", "ts": 100.0},
...     {"type": "node_started", "node": "a", "iteration": 1, "ts": 100.0},
...     {"type": "node_finished", "node": "a", "iteration": 1, "ts": 101.0,
...      "usage": {"output_tokens": 40}},
...     {"type": "node_skipped", "node": "b", "iteration": 1, "ts": 101.0},
...     {"type": "run_finished", "ts": 102.0, "status": "succeeded"},
... ]
>>> t = build_timeline(events, [{"id": "a", "label": "A"}, {"id": "b", "label": "B"}])
>>> t["duration"], t["x0"], t["scale"]
(2.0, 150.0, 297.0)
>>> [(b["node"], b["x"], b["width"], b["status"]) for b in t["bars"]]
[('a', 150.0, 297.0, 'done')]
>>> [s["node"] for s in t["skips"]], t["plot"]["label"], t["plot"]["total"]
(['b'], 'Output tokens, cumulative (counted as each node finishes)', 40)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from graphs.log import fold

WIDTH = 760.0
LABEL_W = 150.0
RIGHT_PAD = 16.0
AXIS_H = 24.0
PLOT_GAP = 34.0
PLOT_H = 64.0
MIN_BAR = 2.0
# Rows get thinner for big flows so that the chart stays a scrollable strip, not a wall.
ROOMY_ROWS = 30
ROW_H, ROW_H_DENSE = 18.0, 10.0
TICKS = 8


def nice_step(duration: float, ticks: int = TICKS) -> float:
    """The smallest 1-2-5 step giving at most `ticks` intervals over `duration` seconds.

    >>> nice_step(2.0), nice_step(0.03), nice_step(95), nice_step(0)
    (0.5, 0.005, 20.0, 0.001)
    """
    step = 0.001
    while duration / step > ticks:
        for factor in (2, 2.5, 2):
            step *= factor
            if duration / step <= ticks:
                break
    return round(step, 6)


def seconds_label(seconds: float) -> str:
    """An axis label: 0 s, 0.25 s, 12 s, 1:30.

    >>> [seconds_label(s) for s in (0, 0.25, 12.0, 90, 3600)]
    ['0 s', '0.25 s', '12 s', '1:30', '60:00']
    """
    if seconds < 60:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + " s"
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def _n(value: float) -> float:
    return round(value, 2)


def build_timeline(
    events: Iterable[Mapping[str, Any]],
    steps: list[Mapping[str, Any]],
    read_chars: Callable[[], Iterable[tuple[float, int]]] | None = None,
) -> dict[str, Any]:
    """Geometry for _timeline.html; `steps` are the graph's nodes in drawing order
    (views.graph_steps): one row each, then any node only the events name.

    `read_chars`, when given, reads the (ts, characters) of the run's streamed deltas, which
    `events` then leaves out: they are asked for only when no node counted its tokens."""
    events = [e for e in events if isinstance(e.get("ts"), (int, float))]
    rows: dict[str, dict[str, Any]] = {}
    for step in steps:
        rows[step["id"]] = {"node": step["id"], "label": step.get("label") or step["id"]}
    tokens: list[tuple[float, int]] = []
    chars: list[tuple[float, int]] = []
    t0 = events[0]["ts"] if events else 0.0
    end = events[-1]["ts"] if events else 0.0
    for event in events:
        kind, ts, node = event.get("type"), float(event["ts"]), event.get("node")
        if kind == "run_started":
            t0 = ts
        elif kind == "run_finished":
            end = ts
        if node is None:
            continue
        if node not in rows:
            rows[node] = {"node": node, "label": node}
        if kind == "node_finished":
            out = (event.get("usage") or {}).get("output_tokens") or 0
            if out:
                tokens.append((ts, int(out)))
        elif kind == "node_delta":
            chars.append((ts, len(event.get("text") or "")))
    visits: list[dict[str, Any]] = []
    skips: list[dict[str, Any]] = []
    for visit in fold(events).visits():
        if visit.status == "skipped":
            skips.append({"node": visit.node, "ts": visit.ended_ts})
            continue
        # A node failing before it started (max_iterations) is a visit of no length.
        start = visit.started_ts if visit.started_ts is not None else visit.ended_ts
        if start is None:
            continue
        settled = visit.status in ("done", "failed", "cancelled", "waiting")
        visits.append(
            {
                "node": visit.node,
                "iteration": visit.iteration,
                "start": start,
                "end": visit.ended_ts,
                "status": visit.status if settled else "running",
                "cached": visit.cached["source"] if visit.cached else None,
                "reused": visit.reused["source"] if visit.reused else None,
            }
        )
    duration = max(end - t0, 0.0) or 1.0
    x0, x1 = LABEL_W, WIDTH - RIGHT_PAD
    scale = (x1 - x0) / duration
    row_h = ROW_H if len(rows) <= ROOMY_ROWS else ROW_H_DENSE

    def x(ts: float) -> float:
        return _n(x0 + (min(max(ts, t0), t0 + duration) - t0) * scale)

    row_list = list(rows.values())
    index = {}
    for i, row in enumerate(row_list):
        index[row["node"]] = i
        row["y"] = _n(AXIS_H + i * row_h)
        row["text_y"] = _n(AXIS_H + i * row_h + row_h / 2)
        row["short"] = row["label"] if len(row["label"]) <= 22 else row["label"][:21] + "…"
    bar_h = row_h - (6 if row_h >= ROW_H else 3)
    bars = []
    for visit in visits:
        stop = visit["end"] if visit["end"] is not None else end
        left = x(visit["start"])
        width = max(x(stop) - left, MIN_BAR)
        row = row_list[index[visit["node"]]]
        bars.append(
            {
                **visit,
                "x": left,
                "width": _n(width),
                "y": _n(row["y"] + (row_h - bar_h) / 2),
                "height": _n(bar_h),
                "title": _bar_title(row["label"], visit, stop),
            }
        )
    for skip in skips:
        row = row_list[index[skip["node"]]]
        skip.update(x=x(skip["ts"]), y=row["text_y"], label=row["label"])
    chart_bottom = AXIS_H + len(row_list) * row_h
    plot_top = chart_bottom + PLOT_GAP
    step = nice_step(duration)
    ticks = []
    for i in range(int(duration / step + 1e-9) + 1):
        ticks.append({"x": x(t0 + i * step), "label": seconds_label(i * step)})
    if tokens:
        series, label = tokens, "Output tokens, cumulative (counted as each node finishes)"
        unit = "tokens"
    else:
        if read_chars is not None:
            chars = list(read_chars())
        series, label = chars, "Streamed characters, cumulative (no token counts recorded)"
        unit = "characters"
    plot = _plot(series, x, plot_top, x0, x1)
    plot.update(label=label, unit=unit, label_y=_n(plot_top - 8))
    return {
        "width": WIDTH,
        "height": _n(plot_top + PLOT_H + 8),
        "x0": x0,
        "x1": x1,
        "t0": t0,
        "duration": duration,
        "scale": scale,
        # Exact, for static/js/runs/replay.js (the template's own numbers are rounded for drawing).
        "data": {"t0": repr(float(t0)), "x0": repr(x0), "scale": repr(scale)},
        "rows": row_list,
        "row_h": row_h,
        "bars": sorted(bars, key=lambda b: (b["start"], b["node"], b["iteration"])),
        "skips": skips,
        "ticks": ticks,
        "chart_bottom": _n(chart_bottom),
        "plot": plot,
        "has_events": bool(events),
    }


def _bar_title(label: str, visit: Mapping[str, Any], stop: float) -> str:
    parts = [label]
    if visit["iteration"] > 1:
        parts.append(f"iteration {visit['iteration']}")
    parts.append(visit["status"])
    parts.append(f"{max(stop - visit['start'], 0):.2f} s")
    for what in ("cached", "reused"):
        if visit.get(what) is not None:
            source = visit[what]
            parts.append(f"{what} from {source}" if source else what)
    return " · ".join(parts)


def _plot(series: list[tuple[float, int]], x, top: float, x0: float, x1: float):
    """A cumulative step line, one point per pixel column at most."""
    total = sum(amount for _, amount in series)
    bottom = top + PLOT_H
    if not total:
        return {"top": _n(top), "bottom": _n(bottom), "path": "", "total": 0, "area": ""}
    columns: dict[float, int] = {}
    running = 0
    for ts, amount in series:
        running += amount
        columns[round(x(ts))] = running
    points = [f"M{x0} {_n(bottom)}"]
    last_y = bottom
    for column, value in columns.items():
        y = _n(bottom - value / total * PLOT_H)
        points.append(f"H{column} V{y}")
        last_y = y
    points.append(f"H{x1}")
    path = " ".join(points)
    return {
        "top": _n(top),
        "bottom": _n(bottom),
        "path": path,
        "area": f"{path} V{_n(bottom)} Z" if last_y != bottom else "",
        "total": total,
    }
