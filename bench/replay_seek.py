"""Replay seek: open a 200-node, ~5,000-event run's page and seek around its replay.

    .venv/bin/python bench/replay_seek.py [--loads 3] [--seeks 20] [--nodes 200] [--deltas 23]

Starts the fake Anthropic API and Daphne on a fresh SQLite file (bench/_live.py), then
writes one finished run through the ORM (``manage.py shell``, no model call, no executor):
an input, NODES-2 llm nodes in layers of 11 (each reads two nodes of the layer before) and
an output. Every llm node records node_started, DELTAS streamed node_delta events 50 ms
apart (a layer's nodes stream at the same time, so their events interleave) and a
node_finished with usage, model and cost; with the run's own events that is ~5,000 events
over ~25 s of recorded time. Headless Chromium (/usr/bin/chromium) logs in at /login/ and
opens /runs/<id>/ in a fresh tab per load.

Measured, from navigation start (the page's performance.now()):

- ready: the replay player is interactive: the whole event log loaded through
  /api/runs/<id>/events, folded once with snapshots, the canvas drawn with the run's
  final state (<html data-replay="ready">). Median of LOADS loads after a warm-up load.
- seek: SEEKS random positions (a fixed seed) set on the scrubber the way a user's drag
  does (its value, then an ``input`` event). Timed from just before the event to the
  first moment after a frame has been painted with the new state: the player is at the
  position, X6's render queue is empty, a frame has gone by, and a task after that
  frame's paint runs. Also shown: the player's own JS time for the seek (restore the
  nearest snapshot, fold, paint every node once).
- baseline: a "seek" to the current position (nothing to fold or draw), timed the same
  way: what the frame pipeline alone costs on this machine.

Targets: seek p95 < 200 ms; player ready < 500 ms (median; issue 18, target 3). Each
figure is also shown as a ratio to its target. See bench/README.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._live import (
    USERNAME,
    LiveStack,
    launch_chromium,
    logged_in_context,
    machine_line,
    pct,
    table,
    verdict,
)

TARGET_MS = 200.0
READY_TARGET_MS = 500.0  # issue 18, target 3: a 5,000-event run page with replay ready
READY_TIMEOUT_S = 60
WIDTH = 11

# Injected before any page script: when the player says it is ready.
PROBE = """
document.addEventListener("switchyard:replay-ready", () => {
  window.__benchReady = performance.now();
});
"""

# Runs in the page: one timed seek. Resolves to {ms, js, pos}.
SEEK = """
async (pos) => {
  const slot = document.querySelector('[data-replay-slot]');
  const player = slot.switchyardReplay;
  const scrub = slot.querySelector('[data-replay-scrub]');
  const jobs = window.Switchyard.canvas.graph.renderer.schedule.queue;
  const frame = () => new Promise((r) => requestAnimationFrame(r));
  const afterPaint = () => new Promise((r) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = r;
    channel.port2.postMessage(0);
  });
  let js = 0;
  const seek = player.seek;
  player.seek = function (target) {
    const started = performance.now();
    try { return seek.call(this, target); } finally { js += performance.now() - started; }
  };
  try {
    const started = performance.now();
    scrub.value = String(pos);
    scrub.dispatchEvent(new Event('input', { bubbles: true }));
    for (let i = 0; i < 600; i++) {
      await frame();
      if (player.pos === pos && jobs.queue.length === 0 && !jobs.isFlushPending) break;
    }
    await afterPaint();
    return { ms: performance.now() - started, js: js, pos: player.pos };
  } finally {
    player.seek = seek;
  }
}
"""


def write_run(username: str = USERNAME, nodes: int = 200, deltas: int = 23) -> int:
    """One finished run of a NODES-node flow, written with the ORM; returns its id.

    Called in the server's environment (``manage.py shell``): it needs Django set up.
    """
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from webapp.flows import services
    from webapp.runs.models import Run, RunEvent

    user = get_user_model().objects.get(username=username)
    middle = nodes - 2
    layers = -(-middle // WIDTH)
    graph_nodes = [
        {
            "id": "in",
            "type": "input",
            "config": {"name": "topic", "default": "seek"},
            "position": {"x": 0, "y": 60 * WIDTH},
        },
    ]
    edges = []
    ids: list[list[str]] = []
    for k in range(layers):
        row = []
        for i in range(min(WIDTH, middle - k * WIDTH)):
            node_id = f"L{k:02d}N{i:02d}"
            row.append(node_id)
            prompt = "Say {{ a }}" if k == 0 else "Join {{ a }} and {{ b }}"
            graph_nodes.append(
                {
                    "id": node_id,
                    "type": "llm",
                    "config": {"prompt": prompt},
                    "position": {"x": 260 * (k + 1), "y": 130 * i},
                }
            )
            if k == 0:
                edges.append(_edge("in", node_id, "value", "a"))
            else:
                before = ids[-1]
                edges.append(_edge(before[i % len(before)], node_id, "text", "a"))
                edges.append(_edge(before[(i + 1) % len(before)], node_id, "text", "b"))
        ids.append(row)
    graph_nodes.append(
        {
            "id": "out",
            "type": "output",
            "config": {"name": "result"},
            "position": {"x": 260 * (layers + 1), "y": 60 * WIDTH},
        }
    )
    for node_id in ids[-1]:
        edges.append(_edge(node_id, "out", "text", "value"))
    flow = services.create(
        user, f"Replay {nodes}", {"graph": {"name": "replay"}, "nodes": graph_nodes, "edges": edges}
    )

    start = 1_700_000_000.0
    timed: list[tuple[float, int, dict[str, Any]]] = []
    order = 0

    def add(ts: float, event: dict[str, Any]) -> None:
        nonlocal order
        order += 1
        timed.append((ts, order, {"ts": ts, **event}))

    add(start, {"type": "run_started", "flow": "replay", "inputs": {"topic": "seek"}, "schema": 1})
    add(start + 0.001, {"type": "node_started", "node": "in", "iteration": 1, "inputs": {}})
    add(
        start + 0.002,
        {
            "type": "node_finished",
            "node": "in",
            "iteration": 1,
            "output": {"value": "seek"},
            "duration_s": 0.001,
        },
    )
    clock = start + 0.01
    usage = {"input_tokens": 120, "output_tokens": deltas * 4}
    for row in ids:
        for j, node_id in enumerate(row):
            begin = clock + j * 0.003
            add(
                begin,
                {
                    "type": "node_started",
                    "node": node_id,
                    "iteration": 1,
                    "inputs": {"a": "…", "b": "…"},
                },
            )
            for d in range(deltas):
                add(
                    begin + 0.05 * (d + 1),
                    {
                        "type": "node_delta",
                        "node": node_id,
                        "iteration": 1,
                        "text": f"word{d} and more ",
                    },
                )
            end = begin + 0.05 * (deltas + 1)
            add(
                end,
                {
                    "type": "node_finished",
                    "node": node_id,
                    "iteration": 1,
                    "output": {"text": "".join(f"word{d} and more " for d in range(deltas))},
                    "duration_s": round(end - begin, 3),
                    "model": "claude-sonnet-4-6",
                    "usage": usage,
                    "cost_usd": 0.00174,
                    "detail": {"prompt": "Join … and …", "system": None},
                },
            )
        clock = max(ts for ts, _, _ in timed) + 0.02
    add(clock, {"type": "node_started", "node": "out", "iteration": 1, "inputs": {"value": "…"}})
    add(
        clock + 0.001,
        {"type": "node_finished", "node": "out", "iteration": 1, "output": {}, "duration_s": 0.001},
    )
    add(
        clock + 0.002,
        {"type": "run_finished", "status": "succeeded", "outputs": {"result": "done"}, "usage": {}},
    )
    timed.sort(key=lambda item: (item[0], item[1]))

    now = timezone.now()
    run = Run.objects.create(
        flow=flow,
        flow_version=flow.current(),
        started_by=user,
        inputs={"topic": "seek"},
        status="succeeded",
        outputs={"result": "done"},
        started_at=now,
        finished_at=now,
        last_seq=len(timed),
    )
    RunEvent.objects.bulk_create(
        [
            RunEvent(run=run, seq=seq, type=event["type"], payload={"seq": seq, **event})
            for seq, (_, _, event) in enumerate(timed, 1)
        ],
        batch_size=1000,
    )
    return run.pk


def _edge(source: str, target: str, source_port: str, target_port: str) -> dict[str, str]:
    return {
        "source": source,
        "target": target,
        "source_port": source_port,
        "target_port": target_port,
    }


class ReplayUnavailable(Exception):
    pass


def open_once(context, url: str, seeks: list[int] | None) -> dict[str, Any]:
    page = context.new_page()
    try:
        page.add_init_script(PROBE)
        response = page.goto(url, wait_until="commit")
        if response is None or response.status != 200:
            raise ReplayUnavailable(f"GET {url} answered {response.status if response else '-'}")
        try:
            page.wait_for_function(
                "() => window.__benchReady !== undefined",
                timeout=READY_TIMEOUT_S * 1000,
                polling=50,
            )
        except Exception as exc:
            state = page.evaluate(
                "({replay: document.documentElement.dataset.replay || null, now: (document"
                ".querySelector('[data-replay-now]') || {}).textContent || null})"
            )
            raise ReplayUnavailable(
                f"player not ready within {READY_TIMEOUT_S} s: {state}"
            ) from exc
        marks = page.evaluate(
            """() => {
              const nav = performance.getEntriesByType('navigation')[0] || {};
              const player = document.querySelector('[data-replay-slot]').switchyardReplay;
              return {ready: window.__benchReady, ttfb: nav.responseStart,
                      canvas: window.Switchyard.canvas.readyAt, load: player.loadedMs,
                      fetch: player.timing.fetch, fold: player.timing.fold,
                      paint: player.timing.paint,
                      events: player.total, done: document.querySelectorAll(
                        '[data-cell-id] .sy-node.st-done').length};
            }"""
        )
        result: dict[str, Any] = {**marks, "seeks": [], "js": [], "baseline": []}
        for pos in seeks or []:
            timed = page.evaluate(SEEK, pos)
            if timed["pos"] != pos:
                raise ReplayUnavailable(f"seek to {pos} ended at {timed['pos']}")
            result["seeks"].append(timed["ms"])
            result["js"].append(timed["js"])
            result["baseline"].append(page.evaluate(SEEK, pos)["ms"])
        return result
    finally:
        page.close()


def measure(stack: LiveStack, run_id: int, loads: int, seeks: int, seed: int) -> list[dict]:
    from playwright.sync_api import sync_playwright

    url = f"{stack.url}/runs/{run_id}/"
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            context = logged_in_context(browser, stack.url)
            first = open_once(context, url, None)  # warm-up: caches, Chromium, the server
            rng = random.Random(seed)
            positions = [rng.randint(0, first["events"] - 1) for _ in range(seeks)]
            results = []
            for i in range(loads):
                # The seeks are made once, on the last load; the others time the opening.
                results.append(open_once(context, url, positions if i == loads - 1 else None))
            return results
        finally:
            browser.close()


def report(args: argparse.Namespace, results: list[dict]) -> None:
    last = results[-1]
    readies = [r["ready"] for r in results]
    seeks, js, base = last["seeks"], last["js"], last["baseline"]
    print(
        f"replay seek: {args.nodes}-node run, {last['events']} recorded events; headless "
        f"Chromium, {args.loads} loads after a warm-up, {len(seeks)} random seeks "
        f"(seed {args.seed})"
    )
    print()

    def spread(label: str, values: list[float]) -> list[Any]:
        return [label, statistics.median(values), min(values), max(values), pct(values, 95)]

    def only(label: str, key: str) -> list[Any]:
        return [label, statistics.median(r[key] for r in results), None, None, None]

    rows = [
        spread("player ready (ms from navigation)", readies),
        only("  canvas drawn", "canvas"),
        only("  player: fetch the event log", "fetch"),
        only("  player: fold it, snapshots", "fold"),
        only("  player: paint the final state", "paint"),
        only("  player: loaded (from its start)", "load"),
        spread("seek: input to painted (ms)", seeks),
        spread("  of which the player's JS", js),
        spread("baseline: no-op seek, same timing", base),
    ]
    print(table(["figure", "median", "min", "max", "p95"], [_dash(r) for r in rows]))
    print(
        "(player ready = events loaded and folded, canvas drawn with the final state; the "
        "player starts loading when replay.js runs, while the canvas draws)"
    )
    print(
        f"(final state on opening: {last['done']} nodes drawn done of {args.nodes}; "
        "virtual rendering draws only the visible ones)"
    )
    print()
    p95 = pct(seeks, 95)
    ready = statistics.median(readies)
    checks = [
        [
            "player ready, median from navigation",
            f"{ready:.0f} ms",
            f"< {READY_TARGET_MS:.0f} ms",
            f"{ready / READY_TARGET_MS:.2f}x target",
            verdict(ready < READY_TARGET_MS),
        ],
        [
            "seek p95, input to painted",
            f"{p95:.0f} ms",
            f"< {TARGET_MS:.0f} ms",
            f"{p95 / TARGET_MS:.2f}x target",
            verdict(p95 < TARGET_MS),
        ],
        [
            "seek max, input to painted",
            f"{max(seeks):.0f} ms",
            f"< {TARGET_MS:.0f} ms",
            f"{max(seeks) / TARGET_MS:.2f}x target",
            verdict(max(seeks) < TARGET_MS),
        ],
    ]
    print(table(["check", "result", "target", "ratio", "verdict"], checks))


def _dash(row: list[Any]) -> list[Any]:
    return [("-" if value is None else value) for value in row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--seeks", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--deltas", type=int, default=23)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(machine_line())
    try:
        with LiveStack() as stack:
            code = (
                "from bench.replay_seek import write_run;"
                f"print('RUN', write_run(nodes={args.nodes}, deltas={args.deltas}))"
            )
            run_id = int(stack.manage("shell", "-c", code).split("RUN")[-1].split()[0])
            results = measure(stack, run_id, args.loads, args.seeks, args.seed)
        report(args, results)
    except ReplayUnavailable as exc:
        print(f"replay seek: player not available ({exc})")
        print("result: FAIL")
    except Exception as exc:
        print(f"replay seek: ERROR {type(exc).__name__}: {exc}")
        print("result: FAIL")


if __name__ == "__main__":
    main()
