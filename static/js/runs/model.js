/* model.js — a run's events folded into what the pages paint: the run's status, clock,
   usage and cost, and per node its status, text, progress, iteration, badges.

   Pure: no DOM, no timers (Node imports it: model.test.js). It records what changed since
   the last takeChanges(), so a frame paints each node once however many events it got (a
   10k-event replay costs a few frames, not 10k repaints); snapshot() and restore() give
   the replay its seek points. runs/view.js paints it, runs/replay.js drives it from a log.
*/
import { formatUsd } from "../lib/format.js";

export const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const PREVIEW_CHARS = 4000;

/** A node's output as its canvas text: the one value, or the JSON of them all, cut short. */
export function preview(output) {
  if (!output || typeof output !== "object") return "";
  const values = Object.values(output);
  const value = values.length === 1 ? values[0] : output;
  let text;
  if (typeof value === "string") text = value;
  else {
    try {
      text = JSON.stringify(value, null, 1);
    } catch (_) {
      text = String(value);
    }
  }
  return text.length > PREVIEW_CHARS ? text.slice(0, PREVIEW_CHARS) + "…" : text;
}

/** A node's tags on the canvas: its cost, and whether its output was cached or reused. */
export function nodeBadges(n) {
  const badges = [];
  if (n.cost != null) {
    badges.push({ kind: "cost", text: formatUsd(n.cost), title: "Model cost of this node" + (n.iteration > 1 ? ", all iterations" : "") });
  }
  if (n.cached) {
    const saved = n.cached.saved != null ? "; saved " + formatUsd(n.cached.saved) : "";
    badges.push({ kind: "cached", text: "cached", title: "Cached output" + (n.cached.source ? " from " + n.cached.source : "") + saved });
  }
  if (n.reused) {
    badges.push({ kind: "reused", text: "reused", title: "Output reused" + (n.reused.source ? " from " + n.reused.source : "") + "; the node did not run" });
  }
  return badges;
}

function origin(value, saved) {
  if (!value) return null;
  return { source: (value && value.source) || "", saved: saved == null ? null : Number(saved) };
}

export class RunModel {
  /** nodeIds(): the ids of the flow's nodes, asked when the run starts. */
  constructor(nodeIds) {
    this.nodeIds = nodeIds || (() => []);
    this.status = "queued";
    this.lastSeq = 0;
    this.startTs = null;
    this.endTs = null;
    this.lastTs = null;
    this.usage = { input_tokens: 0, output_tokens: 0 };
    this.cost = null;
    this.error = "";
    this.nodes = new Map();
    // Every (node, port) that has carried a value: what a whole-state paint marks.
    this.carried = new Map();
    this.clearChanges();
  }

  /** The state as it is now, for restoring later (the replay's seek points). */
  snapshot() {
    const nodes = new Map();
    for (const [id, n] of this.nodes) nodes.set(id, { ...n });
    return {
      status: this.status, lastSeq: this.lastSeq, startTs: this.startTs, endTs: this.endTs,
      lastTs: this.lastTs, usage: { ...this.usage }, cost: this.cost, error: this.error,
      nodes: nodes, carried: new Map(this.carried),
    };
  }

  /** A model in the state of a snapshot; the snapshot itself stays as it was. */
  static restore(snapshot, nodeIds) {
    const model = new RunModel(nodeIds);
    Object.assign(model, {
      status: snapshot.status, lastSeq: snapshot.lastSeq, startTs: snapshot.startTs,
      endTs: snapshot.endTs, lastTs: snapshot.lastTs, usage: { ...snapshot.usage },
      cost: snapshot.cost, error: snapshot.error, carried: new Map(snapshot.carried),
    });
    for (const [id, n] of snapshot.nodes) {
      model.nodes.set(id, { ...n, pending: "", textReset: false, statusDirty: false,
        progressDirty: false, iterationDirty: false, badgesDirty: false });
    }
    return model;
  }

  /** Every node's whole state, to paint at once (after a seek); clears the changes. */
  fullChanges() {
    this.clearChanges();
    const nodes = [];
    for (const n of this.nodes.values()) {
      nodes.push([n.id, { status: n.status, note: n.note, duration: n.duration, iteration: n.iteration,
        progress: n.progress, error: n.error, text: n.text, badges: nodeBadges(n) }]);
    }
    return { reset: true, full: true, nodes: nodes, marks: [...this.carried.values()], run: true, finished: false };
  }

  clearChanges() {
    this.dirty = new Set();
    this.marks = [];
    this.reset = false;
    this.runChanged = false;
    this.finishedNow = false;
  }

  node(id) {
    let n = this.nodes.get(id);
    if (!n) {
      n = {
        id: id, status: "idle", text: "", pending: "", textReset: false, streamed: false,
        progress: null, iteration: 0, duration: null, note: "", error: "",
        cost: null, cached: null, reused: null,
        statusDirty: false, progressDirty: false, iterationDirty: false, badgesDirty: false,
      };
      this.nodes.set(id, n);
    }
    return n;
  }

  touch(n) {
    this.dirty.add(n.id);
    return n;
  }

  setStatus(n, status) {
    if (n.status !== status) {
      n.status = status;
      n.statusDirty = true;
      this.touch(n);
    }
  }

  setText(n, text) {
    n.text = text;
    n.pending = text;
    n.textReset = true;
    this.touch(n);
  }

  get finished() {
    return FINISHED.has(this.status);
  }

  /** Fold one event in; false when it was already applied (seq at or below the last). */
  apply(event) {
    if (typeof event.seq === "number") {
      if (event.seq <= this.lastSeq) return false;
      this.lastSeq = event.seq;
    }
    if (typeof event.ts === "number") this.lastTs = event.ts;
    this.fold(event);
    return true;
  }

  /** What each event type means: the only place it is written in the browser (runs/log.js,
      the fold shared with the server's tests, can take the state part over from here). */
  fold(event) {
    const n = event.node != null ? this.node(event.node) : null;
    switch (event.type) {
      case "run_started":
        this.status = "running";
        this.startTs = event.ts;
        this.runChanged = true;
        this.reset = true;
        this.marks = [];
        this.carried = new Map();
        this.cost = null;
        for (const node of this.nodes.values()) {
          Object.assign(node, { status: "idle", text: "", pending: "", textReset: false, streamed: false,
            progress: null, iteration: 0, duration: null, note: "", error: "",
            cost: null, cached: null, reused: null, badgesDirty: true });
        }
        for (const id of this.nodeIds()) this.setStatus(this.node(id), "queued");
        break;
      case "node_started":
        this.setStatus(n, "running");
        n.note = "";
        n.streamed = false;
        this.setText(n, "");
        if (event.iteration !== n.iteration) {
          n.iteration = event.iteration || 1;
          n.iterationDirty = true;
        }
        break;
      case "node_delta":
        n.text += event.text || "";
        n.pending += event.text || "";
        n.streamed = true;
        this.touch(n);
        break;
      case "node_progress":
        n.progress = [event.done, event.total];
        n.progressDirty = true;
        this.touch(n);
        break;
      case "node_retrying":
        n.note = "retrying: attempt " + event.attempt + " failed (" + (event.error || "error") + ")";
        n.streamed = false;
        this.setText(n, "");
        break;
      case "node_finished":
        this.setStatus(n, "done");
        n.note = "";
        n.duration = event.duration_s;
        if (!n.streamed) this.setText(n, preview(event.output));
        for (const port of Object.keys(event.output || {})) {
          this.marks.push([event.node, port]);
          this.carried.set(event.node + "\u0000" + port, [event.node, port]);
        }
        if (typeof event.cost_usd === "number") {
          n.cost = (n.cost || 0) + event.cost_usd;
          this.cost = (this.cost || 0) + event.cost_usd;
          this.runChanged = true;
        }
        n.cached = origin(event.cached, event.saved_usd);
        n.reused = origin(event.reused);
        n.badgesDirty = true;
        if (event.usage) {
          this.usage = {
            input_tokens: this.usage.input_tokens + (event.usage.input_tokens || 0),
            output_tokens: this.usage.output_tokens + (event.usage.output_tokens || 0),
          };
          this.runChanged = true;
        }
        this.touch(n);
        break;
      case "node_skipped":
        this.setStatus(n, "skipped");
        break;
      case "node_failed":
        n.error = event.error || "";
        n.note = event.cancelled ? "" : n.error;
        this.setStatus(n, event.cancelled ? "cancelled" : "failed");
        this.touch(n);
        break;
      case "run_finished":
        this.status = event.status || "failed";
        this.endTs = event.ts;
        this.error = event.error || "";
        if (event.usage) this.usage = { ...this.usage, ...event.usage };
        // Nodes the run never reached are not waiting any more.
        for (const node of this.nodes.values()) {
          if (node.status === "queued" || node.status === "running") {
            this.setStatus(node, node.status === "running" ? "cancelled" : "idle");
          }
        }
        this.runChanged = true;
        this.finishedNow = true;
        break;
      default:
        break;
    }
  }

  /** What to paint since the last call: {reset, nodes: [[id, change]], marks, run, finished}. */
  takeChanges() {
    const nodes = [];
    for (const id of this.dirty) {
      const n = this.nodes.get(id);
      const change = { status: n.status, note: n.note, duration: n.duration, iteration: n.iteration,
        progress: n.progress, error: n.error };
      change.statusChanged = n.statusDirty;
      if (n.textReset) change.setText = n.pending;
      else if (n.pending) change.append = n.pending;
      if (n.progressDirty) change.progressChanged = true;
      if (n.iterationDirty) change.iterationChanged = true;
      if (n.badgesDirty) change.badges = nodeBadges(n);
      n.pending = "";
      n.textReset = n.statusDirty = n.progressDirty = n.iterationDirty = n.badgesDirty = false;
      nodes.push([id, change]);
    }
    const changes = {
      reset: this.reset, nodes: nodes, marks: this.marks,
      run: this.runChanged, finished: this.finishedNow,
    };
    this.clearChanges();
    return changes;
  }
}
