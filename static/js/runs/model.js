/* model.js — what the pages paint of a run: its status, clock, usage and cost, and per
   node its status, text, progress, iteration, badges.

   What an event means is written once in the browser, in log.js: RunModel applies each
   event to a RunLog (the fold held to graphs/log.py by the golden logs) and derives the
   paint from the fold's state. What is left here is display: the output's preview when
   nothing streamed, nodes still queued or running once the run finished shown as idle or
   cancelled, the retry and thinking notes, and which nodes changed since the last takeChanges(), so a
   frame paints each node once however many events it got (a 10k-event replay costs a few
   frames, not 10k repaints). snapshot() and restore() give the replay its seek points.

   Pure: no DOM, no timers (Node imports it: model.test.js). runs/view.js paints it,
   runs/replay.js drives it from a log.
*/
import { formatUsd } from "../lib/format.js";
import { RunLog } from "./log.js";

export const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const PREVIEW_CHARS = 4000;
// A node as painted before anything was: every first look at it is a change.
const UNPAINTED = { status: null, text: "", progress: null, iteration: 0, badges: [] };

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

const ITEM_TAIL_CHARS = 48;
const ITEM_ERROR_CHARS = 80;
const oneLine = (text) => String(text).replace(/\s+/g, " ").trim();

/** A map's items as its canvas text while it runs: a count by state, then a line per
    running item (its inner node and the tail of what it streams), then each failure.
    Only items that streamed events (the map's item_events) are in `items`. */
export function itemsText(items) {
  if (!items) return "";
  const entries = Object.entries(items).sort((a, b) => Number(a[0]) - Number(b[0]));
  const counts = { done: 0, failed: 0, cancelled: 0, running: 0 };
  const running = [];
  const failed = [];
  for (const [index, item] of entries) {
    if (Object.hasOwn(counts, item.status)) counts[item.status] += 1;
    const where = item.node ? " " + item.node : "";
    if (item.status === "running") {
      const tail = oneLine(item.text).slice(-ITEM_TAIL_CHARS);
      running.push("#" + index + where + (tail ? ": " + tail : ""));
    } else if (item.status === "failed") {
      failed.push("#" + index + " failed: " + oneLine(item.error).slice(0, ITEM_ERROR_CHARS));
    }
  }
  const summary = Object.entries(counts).filter(([, count]) => count).map(([state, count]) => count + " " + state);
  return ["items: " + summary.join(", "), ...running, ...failed].join("\n");
}

/** The share of a visit's prompt tokens read from the provider's cache, and what that
    saved; null when the visit neither wrote nor read it (pricing.cache_read_share). */
export function providerCache(visit) {
  const usage = visit.usage || {};
  const read = Number(usage.cache_read_input_tokens) || 0;
  const written = Number(usage.cache_creation_input_tokens) || 0;
  if (!read && !written) return null;
  const share = Math.round((100 * read) / (read + written + (Number(usage.input_tokens) || 0)));
  return { read: share, saved: typeof visit.provider_saved_usd === "number" ? visit.provider_saved_usd : null };
}

/** "provider cache: N% read, saved $X" (pricing.provider_cache_text); "" for null. */
export function providerCacheText(cache) {
  if (!cache) return "";
  const { read, saved } = cache;
  const savedText = saved != null ? ", saved " + (saved < 0 ? "-" : "") + formatUsd(Math.abs(saved)) : "";
  return "provider cache: " + read + "% read" + savedText;
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
  if (n.providerCache) {
    // The provider's prompt cache, next to the node cache's saving (webapp/runs/pricing.py).
    badges.push({ kind: "provider-cache", text: "cache " + n.providerCache.read + "%", title: providerCacheText(n.providerCache) });
  }
  if (n.reused) {
    badges.push({ kind: "reused", text: "reused", title: "Output reused" + (n.reused.source ? " from " + n.reused.source : "") + "; the node did not run" });
  }
  return badges;
}

function sameBadges(a, b) {
  return a.length === b.length && a.every((x, i) => x.kind === b[i].kind && x.text === b[i].text && x.title === b[i].title);
}

function sameProgress(a, b) {
  return a === b || (a !== null && b !== null && a[0] === b[0] && a[1] === b[1]);
}

/** What the pages paint of one node, from its visits in the fold. `waiting`: the run
    started with the node in its flow; `finished`: the run is over. */
function look(log, id, waiting, finished) {
  const last = log.lastVisit(id);
  let status = last ? last.status : waiting ? "queued" : "idle";
  // Nodes the run never reached are not waiting any more; a visit left open was stopped.
  if (finished && status === "queued") status = "idle";
  else if (finished && status === "running") status = "cancelled";
  let cost = null;
  let done = null; // the latest visit that finished: its duration and badges stay shown
  for (const visit of log.visits(id)) {
    if (typeof visit.cost_usd === "number") cost = (cost || 0) + visit.cost_usd;
    if (visit.status === "done") done = visit;
  }
  let text = last ? last.text : "";
  // A map streams nothing of its own: while it runs (or once it failed), its items show.
  if (last && last.items && !text && last.status !== "done") text = itemsText(last.items);
  if (last && last.status === "done" && !text) text = preview(last.output);
  let note = "";
  if (status === "failed") note = last.error;
  else if (status === "running" && last.retries.length) {
    const retry = last.retries[last.retries.length - 1];
    note = "retrying: attempt " + retry.attempt + " failed (" + (retry.error || "error") + ")";
  } else if (status === "running" && last.thinking && !last.text) {
    // The thinking itself is the inspector's to show, folded apart from the answer.
    note = "thinking…";
  }
  const n = {
    id: id, status: status, text: text, note: note,
    duration: done ? done.duration_s : null,
    iteration: last ? last.iteration : 0,
    progress: last && last.progress ? [last.progress.done, last.progress.total] : null,
    error: last ? last.error : "",
    cost: cost,
    cached: done && done.cached ? { source: done.cached.source, saved: done.saved_usd } : null,
    reused: done && done.reused ? { source: done.reused.source, saved: null } : null,
    providerCache: done ? providerCache(done) : null,
  };
  n.badges = nodeBadges(n);
  return n;
}

export class RunModel {
  /** nodeIds(): the ids of the flow's nodes, asked when the run starts. */
  constructor(nodeIds) {
    this.nodeIds = nodeIds || (() => []);
    this.log = new RunLog();
    this.waiting = new Set(); // the flow's nodes as the run started
    this.looks = new Map(); // node id -> its look (see look()), replaced, never changed
    this.stale = new Set(); // nodes whose look the fold has moved past
    this.painted = new Map(); // node id -> its look as the last changes handed it out
    // Every (node, port) that has carried a value: what a whole-state paint marks.
    this.carried = new Map();
    this.dirty = new Set();
    this.clearChanges();
  }

  // The run, as the fold has it.
  get status() {
    return this.log.status;
  }
  get lastSeq() {
    return this.log.lastSeq;
  }
  get startTs() {
    return this.log.startedTs;
  }
  get endTs() {
    return this.log.finishedTs;
  }
  get lastTs() {
    return this.log.lastTs;
  }
  get usage() {
    return this.log.usage;
  }
  get cost() {
    return this.log.costUsd;
  }
  /** The run's provider-cache figures so far, as the run page shows them ("" for none). */
  get providerCacheText() {
    return providerCacheText(providerCache({ usage: this.log.usage, provider_saved_usd: this.log.providerSavedUsd }));
  }
  get error() {
    return this.log.error;
  }
  get finished() {
    return FINISHED.has(this.log.status);
  }

  /** Each node's look, as of every event applied. */
  get nodes() {
    for (const id of this.stale) this.looks.set(id, look(this.log, id, this.waiting.has(id), this.finished));
    this.stale.clear();
    return this.looks;
  }

  /** The state as it is now, for restoring later (the replay's seek points). */
  snapshot() {
    return {
      log: this.log.copy(), waiting: this.waiting, looks: new Map(this.nodes),
      carried: new Map(this.carried),
    };
  }

  /** A model in the state of a snapshot, taken as painted; the snapshot stays as it was. */
  static restore(snapshot, nodeIds) {
    const model = new RunModel(nodeIds);
    model.log = snapshot.log.copy();
    model.waiting = snapshot.waiting;
    model.looks = new Map(snapshot.looks);
    model.painted = new Map(snapshot.looks);
    model.carried = new Map(snapshot.carried);
    return model;
  }

  /** Every node's whole state, to paint at once (after a seek); clears the changes. */
  fullChanges() {
    const looks = this.nodes;
    this.clearChanges();
    this.painted = new Map(looks);
    const nodes = [];
    for (const n of looks.values()) {
      nodes.push([n.id, { status: n.status, note: n.note, duration: n.duration, iteration: n.iteration,
        progress: n.progress, error: n.error, text: n.text, badges: n.badges }]);
    }
    return { reset: true, full: true, nodes: nodes, marks: [...this.carried.values()], run: true, finished: false };
  }

  /** Take everything as painted. */
  clearChanges() {
    if (this.dirty.size) {
      const looks = this.nodes;
      for (const id of this.dirty) this.painted.set(id, looks.get(id));
    }
    this.dirty = new Set();
    this.marks = [];
    this.reset = false;
    this.runChanged = false;
    this.finishedNow = false;
  }

  /** Fold one event in; false when it was already applied (seq at or below the last). */
  apply(event) {
    const log = this.log;
    const node = typeof event.node === "string" ? event.node : null;
    const before = node === null ? null : log.lastVisit(node);
    const wasDone = before !== null && before.status === "done";
    const { status, startedTs, finishedTs, costUsd, error } = log;
    const { input_tokens: input, output_tokens: output } = log.usage;
    if (!log.apply(event)) return false;
    // The fold began afresh: a new run on a clean canvas.
    // (A parked run going on, waiting -> running, is the same run.)
    const going = status === "running" || status === "waiting";
    if (log.status === "running" && (!going || log.startedTs !== startedTs)) this.begin();
    if (node !== null && log.lastVisit(node) !== null) {
      this.changed(node);
      const visit = log.lastVisit(node);
      if (visit.status === "done" && (visit !== before || !wasDone)) this.carry(node, visit.output);
    }
    if (this.finished && !FINISHED.has(status)) {
      this.finishedNow = true;
      for (const id of this.looks.keys()) this.changed(id);
    }
    if (log.status !== status || log.startedTs !== startedTs || log.finishedTs !== finishedTs ||
        log.costUsd !== costUsd || log.error !== error || log.usage.input_tokens !== input ||
        log.usage.output_tokens !== output) {
      this.runChanged = true;
    }
    return true;
  }

  begin() {
    this.reset = true;
    this.runChanged = true;
    this.marks = [];
    this.carried = new Map();
    this.looks = new Map();
    this.stale = new Set();
    this.painted = new Map();
    this.dirty = new Set();
    this.waiting = new Set(this.nodeIds());
    for (const id of this.waiting) this.changed(id);
  }

  changed(id) {
    if (!this.looks.has(id)) this.looks.set(id, null);
    this.stale.add(id);
    this.dirty.add(id);
  }

  /** The edges out of a node's output ports carried a value; marked once a run. */
  carry(node, output) {
    for (const port of Object.keys(output || {})) {
      const key = node + "\u0000" + port;
      if (this.carried.has(key)) continue;
      this.carried.set(key, [node, port]);
      this.marks.push([node, port]);
    }
  }

  /** What to paint since the last call: {reset, nodes: [[id, change]], marks, run, finished}. */
  takeChanges() {
    const looks = this.nodes;
    const nodes = [];
    for (const id of this.dirty) {
      const n = looks.get(id);
      const was = this.painted.get(id) || UNPAINTED;
      const change = { status: n.status, note: n.note, duration: n.duration, iteration: n.iteration,
        progress: n.progress, error: n.error };
      change.statusChanged = n.status !== was.status;
      // Streamed text goes on where the canvas has it; anything else replaces it.
      if (n.text !== was.text) {
        if (n.text.startsWith(was.text)) change.append = n.text.slice(was.text.length);
        else change.setText = n.text;
      }
      if (!sameProgress(n.progress, was.progress)) change.progressChanged = true;
      if (n.iteration !== was.iteration) change.iterationChanged = true;
      if (!sameBadges(n.badges, was.badges)) change.badges = n.badges;
      this.painted.set(id, n);
      nodes.push([id, change]);
    }
    this.dirty = new Set();
    const changes = {
      reset: this.reset, nodes: nodes, marks: this.marks,
      run: this.runChanged, finished: this.finishedNow,
    };
    this.clearChanges();
    return changes;
  }
}
