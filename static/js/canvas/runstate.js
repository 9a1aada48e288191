/* runstate.js — a run painted on the canvas (the viewer's part): per node its status,
   streamed text, progress, iteration and badges, and the edges that carried a value.

   Run-state calls never change the document, the undo history or the dirty flag. A drawn
   node redraws only its attrs (redraw(node), the editor's quiet render); a node out of
   view is marked stale and drawn when it comes into view. runKey and normalState are
   pure (runstate.test.js). */
import { STATUSES, TAG_SLOTS, portName } from "./shapes.js";

// Options marking changes that are not edits of the flow: history skips them.
const UI = { derived: true };
const TEXT_CHARS = 4000;

/** What a node shows for its run state; equal keys mean nothing to redraw. */
export function runKey(s) {
  if (!s) return "";
  const badges = (s.badges || []).map((b) => `${b.kind}:${b.text}:${b.title || ""}`).join("|");
  return [s.status || "idle", s.text || "", `${s.done || 0}/${s.total || 0}`, s.iteration || 0, badges, s.error || ""].join("\u0000");
}

/** A node's run state with every field present and in range. */
export function normalState(s) {
  return {
    status: STATUSES.includes(s.status) ? s.status : "idle",
    text: String(s.text || "").slice(-TEXT_CHARS),
    done: Number(s.done) || 0,
    total: Number(s.total) || 0,
    iteration: Number(s.iteration) || 0,
    badges: Array.isArray(s.badges) ? s.badges.slice(0, TAG_SLOTS) : [],
    // Why a failed node failed: shown on the node and in its inspector.
    error: s.status === "failed" ? String(s.error || "") : "",
  };
}

export class RunState {
  /** redraw(node): draw a node's run state again, quietly (no edge re-routes). */
  constructor(graph, redraw) {
    this.graph = graph;
    this.redraw = redraw;
    this.states = new Map(); // node id -> {status, text, done, total, iteration, badges}
    this.tall = new Set(); // nodes that have shown streamed text since the last reset
    this.stale = new Set(); // nodes whose run state is newer than their drawing (out of view)
    graph.on("view:mounted", ({ view }) => {
      const cell = view && view.cell;
      if (cell && this.stale.delete(cell.id) && cell.isNode()) this.redraw(cell);
    });
  }

  get(nodeId) {
    return this.states.get(nodeId);
  }

  /** Forget everything (a new document), without drawing. */
  clear() {
    this.states.clear();
    this.tall.clear();
    this.stale.clear();
  }

  delete(nodeId) {
    this.states.delete(nodeId);
  }

  state(nodeId) {
    if (!this.states.has(nodeId)) this.states.set(nodeId, {});
    return this.states.get(nodeId);
  }

  touch(nodeId) {
    const node = this.graph.getCellById(nodeId);
    if (node && node.isNode()) this.redraw(node);
  }

  setStatus(nodeId, status) {
    this.state(nodeId).status = STATUSES.includes(status) ? status : "idle";
    this.touch(nodeId);
  }

  setText(nodeId, text) {
    this.state(nodeId).text = String(text || "").slice(-TEXT_CHARS);
    this.touch(nodeId);
  }

  appendText(nodeId, text) {
    const s = this.state(nodeId);
    s.text = ((s.text || "") + String(text || "")).slice(-TEXT_CHARS);
    this.touch(nodeId);
  }

  setProgress(nodeId, done, total) {
    const s = this.state(nodeId);
    s.done = Number(done) || 0;
    s.total = Number(total) || 0;
    this.touch(nodeId);
  }

  setIteration(nodeId, n) {
    this.state(nodeId).iteration = Number(n) || 0;
    this.touch(nodeId);
  }

  /** Why the node failed ("" once it runs again): the node shows it under its frame. */
  setError(nodeId, error) {
    this.state(nodeId).error = String(error || "");
    this.touch(nodeId);
  }

  setNodeBadges(nodeId, badges) {
    this.state(nodeId).badges = Array.isArray(badges) ? badges.slice(0, TAG_SLOTS) : [];
    this.touch(nodeId);
  }

  // A node out of view has no mounted view: redrawing its model costs as much as a drawn
  // one's, for nothing. So it is marked stale and drawn when it comes into view.
  touchWhenDrawn(nodeId) {
    const node = this.graph.getCellById(nodeId);
    if (!node || !node.isNode()) return;
    const view = this.graph.findViewByCell(node);
    if (view && this.graph.renderer.isViewMounted(view)) {
      this.stale.delete(nodeId);
      this.redraw(node);
    } else {
      this.stale.add(nodeId);
    }
  }

  /** The whole run state in one pass (a seek): states = [[nodeId, state]], carried =
      [[sourceNodeId, sourcePort]]; every other node goes back to idle; only nodes whose
      state changed are redrawn. */
  paint(states, carried) {
    const before = new Map([...this.states].map(([id, s]) => [id, runKey(s)]));
    this.states.clear();
    for (const [id, s] of states || []) this.states.set(id, normalState(s));
    for (const id of new Set([...before.keys(), ...this.states.keys()])) {
      if (before.get(id) !== runKey(this.states.get(id))) this.touchWhenDrawn(id);
    }
    const want = new Set((carried || []).map(([node, port]) => `${node}\u0000${port}`));
    for (const e of this.graph.getEdges()) {
      const current = String(e.attr("line/class") || "");
      if (current !== "sy-edge-line" && current !== "sy-edge-line is-carried") continue;
      const key = `${e.getSourceCellId()}\u0000${portName(e.getSourcePortId())}`;
      const next = want.has(key) ? "sy-edge-line is-carried" : "sy-edge-line";
      if (current !== next) this.setEdgeClass(e, next);
    }
  }

  // Run marks on edges, like the quiet node redraw: the model quietly, a drawn line's class
  // directly (an edge's attrs change would re-route it).
  setEdgeClass(edge, cls) {
    edge.attr("line/class", cls, { ...UI, silent: true });
    const view = this.graph.findViewByCell(edge);
    if (!view || !this.graph.renderer.isViewMounted(view)) return;
    const line = view.selectors && view.selectors.line;
    if (line) line.setAttribute("class", cls);
    else view.update();
  }

  /** The edges out of this node (and port, if given) carried a value. */
  markEdges(sourceNodeId, sourcePort) {
    for (const e of this.graph.getEdges()) {
      if (e.getSourceCellId() === sourceNodeId && (!sourcePort || e.getSourcePortId() === `out:${sourcePort}`)) {
        this.setEdgeClass(e, "sy-edge-line is-carried");
      }
    }
  }

  /** Every node and edge back to idle and empty. */
  reset() {
    const ids = [...this.states.keys()];
    this.clear();
    ids.forEach((id) => this.touch(id));
    for (const e of this.graph.getEdges()) {
      if (String(e.attr("line/class") || "").includes("is-carried")) this.setEdgeClass(e, "sy-edge-line");
    }
  }
}
