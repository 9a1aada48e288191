"""Editor open: time until the flow editor shows a 300-node flow ready to edit.

    .venv/bin/python bench/editor_open.py [--loads 5] [--layers 30] [--width 10]

Starts the fake Anthropic API and Daphne (own SQLite file), creates a LAYERS x WIDTH DAG
of template nodes (each reads two nodes of the layer before) between one input and one
output, and an empty flow (input -> output, what "New flow" creates), logs in through
/login/ in headless Chromium (Debian's /usr/bin/chromium), and opens /flows/<id>/.

Ready = the first animation frame, counted from navigation start (the page's
performance.now()), at which ``window.Switchyard.canvas.graph`` (the X6 Graph) holds
every node and edge of the flow and the editor has flagged its first render done
(``<html data-canvas="ready">``). Each figure is the median of LOADS loads after one
warm-up load; loads of the big and the empty flow alternate. Target: median < 500 ms
(issue 18, target 3). The empty flow is the floor: the same page, scripts and X6, with
nothing to draw; ``x empty`` is the big flow's time over it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._live import (
    Api,
    LiveStack,
    edge,
    flow_doc,
    launch_chromium,
    logged_in_context,
    machine_line,
    node,
    table,
    verdict,
)

TARGET_MS = 500.0
EDITOR_TIMEOUT_S = 20

# Injected before any page script: from the first frame on, record when the editor's
# graph holds the whole flow and its first render is done. Times are performance.now(),
# i.e. milliseconds since this navigation started.
PROBE = """
(() => {
  const marks = (window.__bench = {modelAt: null, readyAt: null, error: null});
  const tick = () => {
    try {
      const want = JSON.parse(sessionStorage.getItem("benchWant") || "null");
      const canvas = window.Switchyard && window.Switchyard.canvas;
      const graph = canvas && canvas.graph;
      if (want && graph) {
        const full = graph.getNodes().length === want.nodes
          && graph.getEdges().length === want.edges;
        if (full && marks.modelAt === null) marks.modelAt = performance.now();
        if (full && document.documentElement.dataset.canvas === "ready") {
          marks.readyAt = performance.now();
          return;
        }
      }
    } catch (e) {
      marks.error = String(e);
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();
"""


def dag_doc(layers: int, width: int) -> dict[str, Any]:
    """input -> LAYERS x WIDTH templates (each reads nodes i and i+1 of the layer before)
    -> output; the last layer's nodes are alternatives into the output's one port."""
    nodes = [node("in", "input", 0, 60 * width, name="topic", default="dag")]
    edges = []
    for k in range(layers):
        for i in range(width):
            node_id = f"L{k:02d}N{i:02d}"
            template = "{{ a }}" if k == 0 else "{{ a }}|{{ b }}"
            nodes.append(node(node_id, "template", 260 * (k + 1), 120 * i, template=template))
            if k == 0:
                edges.append(edge("in", node_id, "value", "a"))
            else:
                edges.append(edge(f"L{k - 1:02d}N{i:02d}", node_id, "text", "a"))
                edges.append(edge(f"L{k - 1:02d}N{(i + 1) % width:02d}", node_id, "text", "b"))
    nodes.append(node("out", "output", 260 * (layers + 1), 60 * width, name="result"))
    for i in range(width):
        edges.append(edge(f"L{layers - 1:02d}N{i:02d}", "out", "text", "value"))
    return flow_doc(f"DAG {layers}x{width}", nodes, edges)


def empty_doc() -> dict[str, Any]:
    """What "New flow" creates: one input wired to one output."""
    nodes = [
        node("input", "input", 0, 100, name="input"),
        node("output", "output", 300, 100, name="output"),
    ]
    return flow_doc("empty", nodes, [edge("input", "output", "value", "value")])


async def create_flows(stack: LiveStack, layers: int, width: int) -> dict[str, Any]:
    api = Api(stack)
    try:
        big = dag_doc(layers, width)
        empty = empty_doc()
        return {
            "big": (await api.create_flow(big["graph"]["name"], big), big),
            "empty": (await api.create_flow("empty", empty), empty),
        }
    finally:
        await api.close()


class EditorUnavailable(Exception):
    pass


def open_once(context, url: str, doc: dict[str, Any]) -> dict[str, float]:
    """One load in a fresh tab: ready and model-complete times (ms), and click-to-select."""
    want = {"nodes": len(doc["nodes"]), "edges": len(doc["edges"])}
    page = context.new_page()
    try:
        page.add_init_script(f"sessionStorage.setItem('benchWant', {_js(want)});")
        page.add_init_script(PROBE)
        response = page.goto(url, wait_until="commit")
        if response is None or response.status != 200:
            status = response.status if response else "no response"
            raise EditorUnavailable(f"GET {url} answered {status}")
        try:
            page.wait_for_function(
                "() => window.__bench && (window.__bench.readyAt !== null || window.__bench.error)",
                timeout=EDITOR_TIMEOUT_S * 1000,
                polling=50,
            )
        except Exception as exc:
            state = page.evaluate(
                "({bench: window.__bench || null, canvas: !!(window.Switchyard &&"
                " window.Switchyard.canvas), flag: document.documentElement.dataset.canvas ||"
                " null, nodes: window.Switchyard && window.Switchyard.canvas &&"
                " window.Switchyard.canvas.graph ? window.Switchyard.canvas.graph"
                ".getNodes().length : null})"
            )
            raise EditorUnavailable(
                f"editor not ready within {EDITOR_TIMEOUT_S} s: {state}"
            ) from exc
        marks = page.evaluate("window.__bench")
        if marks.get("error"):
            raise EditorUnavailable(f"probe error: {marks['error']}")
        drawn = page.evaluate("document.querySelectorAll('#ed-canvas .x6-node').length")
        timing = page.evaluate(
            """() => {
              const nav = performance.getEntriesByType('navigation')[0] || {};
              const mark = performance.getEntriesByName('switchyard:canvas-start')[0];
              return {ttfb: nav.responseStart, dcl: nav.domContentLoadedEventEnd,
                      start: mark ? mark.startTime : NaN, bytes: nav.transferSize};
            }"""
        )
        click_ms = click_to_select(page)
        return {
            "ready": marks["readyAt"],
            "model": marks["modelAt"],
            "drawn": drawn,
            "click": click_ms,
            "ttfb": timing["ttfb"],
            "dcl": timing["dcl"],
            "script": timing["start"] if timing["start"] is not None else float("nan"),
            "kb": (timing["bytes"] or 0) / 1024,
        }
    finally:
        page.close()


def click_to_select(page) -> float:
    """Click the first drawn node; ms until the editor's onNodeClick callback runs."""
    box = page.evaluate(
        """() => {
          const el = document.querySelector('#ed-canvas .x6-node');
          if (!el || typeof window.Switchyard.canvas.onNodeClick !== 'function') return null;
          window.__benchClicked = null;
          window.Switchyard.canvas.onNodeClick(() => {
            if (window.__benchClicked === null) window.__benchClicked = performance.now();
          });
          const r = el.getBoundingClientRect();
          return {x: r.left + r.width / 2, y: r.top + 12};
        }"""
    )
    if box is None:
        return float("nan")
    started = page.evaluate("performance.now()")
    page.mouse.click(box["x"], box["y"])
    try:
        page.wait_for_function("() => window.__benchClicked !== null", timeout=5000, polling="raf")
    except Exception:
        return float("nan")
    return page.evaluate("window.__benchClicked") - started


def _js(value: Any) -> str:
    import json

    return json.dumps(json.dumps(value))


def measure(stack: LiveStack, flows: dict[str, Any], loads: int) -> dict[str, list[dict]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            context = logged_in_context(browser, stack.url)
            results: dict[str, list[dict]] = {"big": [], "empty": []}
            for name in ("big", "empty"):  # warm-up: caches, Chromium, the server
                flow_id, doc = flows[name]
                open_once(context, f"{stack.url}/flows/{flow_id}/", doc)
            for _ in range(loads):
                for name in ("big", "empty"):
                    flow_id, doc = flows[name]
                    results[name].append(open_once(context, f"{stack.url}/flows/{flow_id}/", doc))
            return results
        finally:
            browser.close()


def report(args: argparse.Namespace, flows: dict[str, Any], results: dict[str, list]) -> None:
    big_doc, empty_doc_ = flows["big"][1], flows["empty"][1]

    def med(name: str, key: str) -> float:
        values = [r[key] for r in results[name] if r[key] == r[key]]
        return statistics.median(values) if values else float("nan")

    big, empty = med("big", "ready"), med("empty", "ready")
    print(
        f"editor open: {len(big_doc['nodes'])}-node flow ({args.layers}x{args.width} template "
        f"DAG + input + output, {len(big_doc['edges'])} edges) vs the empty flow "
        f"({len(empty_doc_['nodes'])} nodes); headless Chromium, median of {args.loads} loads "
        "after a warm-up"
    )
    print()
    rows = []
    for name, label in (("big", f"{len(big_doc['nodes'])}-node flow"), ("empty", "empty flow")):
        readies = [r["ready"] for r in results[name]]
        rows.append(
            [
                label,
                med(name, "ready"),
                min(readies),
                max(readies),
                med(name, "ttfb"),
                med(name, "script"),
                med(name, "dcl"),
                med(name, "model"),
                med(name, "drawn"),
                med(name, "click"),
                med(name, "kb"),
                med(name, "ready") / empty,
            ]
        )
    print(
        table(
            [
                "flow",
                "ready ms",
                "min",
                "max",
                "ttfb",
                "js start",
                "dcl",
                "model",
                "drawn",
                "click ms",
                "html KB",
                "x empty",
            ],
            rows,
        )
    )
    print(
        "(ms from navigation start, medians. ready = all nodes and edges in the X6 graph and "
        "the editor's first render done; ttfb = first byte of the page; js start = "
        "canvas/editor.js "
        "begins; dcl = DOMContentLoaded done; model = all nodes and edges in the graph; "
        "drawn = node views in the DOM (virtual rendering draws the visible area only); "
        "click = a click on a drawn node until the editor's onNodeClick callback runs)"
    )
    print()
    checks = [["300-node flow ready to edit, median", f"{big:.0f} ms", f"< {TARGET_MS:.0f} ms",
               verdict(big < TARGET_MS)]]  # fmt: skip
    print(table(["check", "result", "target", "verdict"], checks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--width", type=int, default=10)
    args = parser.parse_args()
    print(machine_line())
    try:
        with LiveStack() as stack:
            flows = asyncio.run(create_flows(stack, args.layers, args.width))
            results = measure(stack, flows, args.loads)
        report(args, flows, results)
    except EditorUnavailable as exc:
        print(f"editor open: editor not available ({exc})")
        print(table(["check", "result", "target", "verdict"],
                    [["300-node flow ready to edit", "editor not available",
                      f"< {TARGET_MS:.0f} ms", "FAIL"]]))  # fmt: skip
    except Exception as exc:
        print(f"editor open: ERROR {type(exc).__name__}: {exc}")
        print("result: FAIL")


if __name__ == "__main__":
    main()
