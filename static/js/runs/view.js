/* view.js — a run, shown: the run panel in the editor and the run page.

   The server renders every piece of HTML (run form, steps, outputs, node cards); this
   file places it, follows a run's events (follower.js), folds them (model.js) and paints
   them on the canvas (window.Switchyard.canvas, see canvas/editor.js) and on the
   data-run-* hooks of a [data-run-view]: queue events, apply them once per animation
   frame, paint the canvas and the panel; run form, cancel, outputs.

   On the run page of a finished run the replay player (replay.js) loads the event log
   instead of the websocket and drives the same RunModel and painting: it attaches itself
   with view.attachReplay(player), paints whole states with view.showModel(model) and
   incremental ones with view.paintNodes(model.takeChanges()).
*/
import { formatSeconds, formatUsage, formatUsd } from "../lib/format.js";
import { csrfToken, postForm, postJSON } from "../lib/net.js";
import { Follower } from "./follower.js";
import { BadValue, collectFiles, collectInputs, parseValue, uploadBody } from "./inputs.js";
import { FINISHED, RunModel, nodeBadges, preview } from "./model.js";

const Switchyard = (window.Switchyard = window.Switchyard || {});

const STATUS_TEXT = {
  idle: "Not run yet",
  queued: "Queued",
  running: "Running",
  waiting: "Waiting",
  succeeded: "Succeeded",
  failed: "Failed",
  cancelled: "Cancelled",
};
const FRAME_BUDGET_MS = 10;
// Events that change where a run is paused at a breakpoint.
const PAUSE_EVENTS = new Set(["node_waiting", "node_resumed", "run_finished"]);
const PAUSE_RETRY_MS = 300;
const PAUSE_TRIES = 40;
const ANSWERED = new Set([200, 400, 409]);
const STALL_CHECK_MS = 15000;
const NODE_ID = /^[A-Za-z_][A-Za-z0-9_-]{0,99}$/; // graphs.document.IDENTIFIER

/** "the run cannot start" -> "The run cannot start." */
function sentence(text) {
  text = String(text || "").trim();
  if (!text) return "";
  text = text[0].toUpperCase() + text.slice(1);
  return /[.!?…:]$/.test(text) ? text : text + ".";
}

// ---- Helpers -------------------------------------------------------------

function canvasCall(name, ...args) {
  const canvas = Switchyard.canvas;
  if (!canvas || typeof canvas[name] !== "function") return undefined;
  try {
    return canvas[name](...args);
  } catch (error) {
    console.warn("canvas." + name + " failed", error);
    return undefined;
  }
}

function canvasNodeIds() {
  const doc = canvasCall("documentJSON");
  return doc && Array.isArray(doc.nodes) ? doc.nodes.map((n) => n.id) : [];
}

/** htmx places server-rendered HTML; a plain fetch does if htmx is missing. */
function place(url, target) {
  // The target is also the source: htmx then queues requests per target (the newest
  // wins), not all of them behind whatever the page body asked for last.
  if (window.htmx) return window.htmx.ajax("GET", url, { source: target, target: target, swap: "innerHTML" });
  return fetch(url, { credentials: "same-origin" })
    .then((r) => r.text())
    .then((html) => {
      target.innerHTML = html;
    });
}

function runsChanged() {
  document.body.dispatchEvent(new CustomEvent("switchyard-runs-changed", { bubbles: true }));
}

// ---- One run view --------------------------------------------------------

export class RunView {
  constructor(root) {
    this.root = root;
    this.runId = null;
    this.model = null;
    this.follower = null;
    this.queue = [];
    this.head = 0;
    // A map's items' own events, for a map's inner flow drawn on the canvas (drill.js).
    this.itemEvents = [];
    this.frame = 0;
    this.ticker = 0;
    this.stallTimer = 0;
    this.canvasReady = !("readOnly" in root.dataset);
    const serverNow = parseFloat(root.dataset.serverNow);
    this.skew = isFinite(serverNow) ? Date.now() / 1000 - serverNow : 0;
    this.el = {
      status: this.$("[data-run-status]"),
      statusText: this.$("[data-run-status-text]"),
      elapsed: this.$("[data-run-elapsed]"),
      usage: this.$("[data-run-usage]"),
      cancel: this.$("[data-run-cancel]"),
      link: this.$("[data-run-link]"),
      message: this.$("[data-run-message]"),
      problems: this.$("[data-run-problems]"),
      formSlot: this.$("[data-run-form-slot]"),
      open: this.$("[data-run-open]"),
      steps: this.$("[data-run-steps]"),
      outputs: this.$("[data-run-outputs]"),
      node: this.$("[data-run-node]"),
      recent: this.$("[data-run-recent]"),
      cost: this.$("[data-run-cost]"),
      pauses: this.$("[data-run-pauses]"),
      providerCache: this.$("[data-run-provider-cache]"),
    };
    this.replay = null;
    this.bind();
    if (root.dataset.runId) this.startRunPage(Number(root.dataset.runId));
  }

  $(selector) {
    return this.root.querySelector(selector);
  }

  bind() {
    const { cancel, open } = this.el;
    if (cancel) cancel.addEventListener("click", () => this.cancel());
    if (open) open.addEventListener("click", () => this.toggleForm());
    this.root.addEventListener("submit", (event) => {
      const pause = event.target.closest("[data-breakpoint-form]");
      if (pause) {
        event.preventDefault();
        this.answerPause(pause, event.submitter);
        return;
      }
      const form = event.target.closest("[data-run-form]");
      if (!form) return;
      event.preventDefault();
      this.submit(form);
    });
    this.root.addEventListener("click", (event) => {
      if (event.target.closest("[data-run-form-close]")) this.closeForm(true);
      if (event.target.closest("[data-node-close]") && this.el.node) this.el.node.replaceChildren();
    });
    this.root.addEventListener("keydown", (event) => {
      const form = event.target.closest && event.target.closest("[data-run-form]");
      if (!form) return;
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        form.requestSubmit();
      } else if (event.key === "Escape") {
        event.preventDefault();
        this.closeForm(true);
      }
    });
    this.root.addEventListener("htmx:afterSwap", (event) => this.afterSwap(event.target));
  }

  afterSwap(target) {
    if (target === this.el.steps) {
      this.stepItems = null;
      this.paintAllSteps();
    }
    if (target === this.el.recent && this.runId == null) {
      // Opening the editor while one of its runs is still going: follow it.
      const active = target.querySelector("[data-active-run]");
      if (active && !this.attachedOnce) this.follow(Number(active.dataset.activeRun));
      this.attachedOnce = true;
    }
  }

  // -- the run page

  startRunPage(runId) {
    // The page embeds the run's version for canvas/editor.js (#editor-data); draw it read-only.
    const data = document.getElementById("editor-data");
    const doc = data ? JSON.parse(data.textContent).doc || {} : {};
    const started = Date.now();
    let drawn;
    this.canvasDrawn = new Promise((resolve) => {
      drawn = resolve;
    });
    const ready = () => {
      drawn();
      this.canvasReady = true;
      // A replay may have loaded its state before the canvas was drawn.
      if (this.replay && this.model) this.paintNodes(this.model.fullChanges());
      this.schedule();
    };
    const tryLoad = () => {
      const canvas = Switchyard.canvas;
      if (canvas && typeof canvas.load === "function") {
        Promise.resolve(canvas.ready)
          .then(() => {
            canvasCall("load", doc, { readOnly: true });
            canvasCall("onNodeClick", (nodeId) => this.showNode(nodeId, { reveal: true }));
          })
          .catch((error) => console.warn("canvas not ready", error))
          .then(ready);
      } else if (Date.now() - started < 10000) {
        setTimeout(tryLoad, 50);
      } else {
        ready(); // no canvas: the status, steps and outputs still show everything
      }
    };
    tryLoad();
    const ids = (doc.nodes || []).map((n) => n.id);
    this.nodeIds = () => ids;
    const replay = this.$("[data-replay]");
    const state = replay && replay.dataset.replayState;
    if (this.root.dataset.runFinished === "true" && replay) {
      // A finished run: the replay player loads its events and paints the final state.
      this.runId = runId;
      this.model = new RunModel(this.nodeIds);
      // Or, when replay cannot read this run, nothing is painted that could be wrong.
      if (state === "unavailable") return;
      // A share link's page has no websocket to fall back on.
      if (this.root.hasAttribute("data-public")) return;
      this.replayTimer = setTimeout(() => {
        if (!this.replay) this.follow(runId, { nodeIds: this.nodeIds, runPage: true });
      }, 2000);
      return;
    }
    if (this.root.hasAttribute("data-public")) return;
    this.follow(runId, { nodeIds: this.nodeIds, runPage: true });
  }

  /** The replay player takes over the painting of a finished run (see replay.js). */
  attachReplay(player) {
    this.replay = player;
    clearTimeout(this.replayTimer);
  }

  /** Paint a whole model at once (a replay's seek); it becomes the view's model. */
  showModel(model) {
    this.model = model;
    if (!this.canvasReady) return;
    this.paintNodes(model.fullChanges());
  }

  nodeUrl(nodeId) {
    // Only identifiers name nodes (graphs.document.IDENTIFIER): anything else, from a run
    // older than that rule, gets no URL rather than one it could steer elsewhere.
    if (!NODE_ID.test(nodeId)) return null;
    let url = "/runs/" + this.runId + "/nodes/" + encodeURIComponent(nodeId) + "/";
    // While a replay is short of the end, the inspector shows the node as of that point.
    const upto = this.replay && this.replay.upto();
    if (upto != null) url += "?upto=" + upto;
    return url;
  }

  showNode(nodeId, options) {
    const target = this.el.node;
    const url = this.runId == null ? null : this.nodeUrl(nodeId);
    if (!target || url == null) return;
    const placed = place(url, target);
    if (options && options.reveal) {
      Promise.resolve(placed).then(() => target.scrollIntoView({ block: "nearest", behavior: "smooth" }));
    }
  }

  // -- following a run

  follow(runId, options) {
    options = options || {};
    this.stopFollowing();
    this.runId = runId;
    this.model = new RunModel(options.nodeIds || canvasNodeIds);
    this.itemEvents = [];
    this.queue = [];
    this.head = 0;
    this.outputsShown = false;
    this.outputsLoading = null;
    if (this.el.link) {
      this.el.link.href = "/runs/" + runId + "/";
      this.el.link.hidden = false;
    }
    if (options.runPage) {
      // The page starts from what the server rendered; the backlog moves it on from there.
      const final = this.el.outputs && this.el.outputs.querySelector('[data-outputs-final="true"]');
      this.outputsShown = Boolean(final);
    } else {
      canvasCall("resetRunState");
      const current = this.$("[data-run-current]");
      if (current) current.hidden = false;
      if (this.el.outputs) this.outputsLoading = place("/runs/" + runId + "/outputs/", this.el.outputs);
      if (this.el.steps) place("/runs/" + runId + "/steps/", this.el.steps);
      if (this.el.node) this.el.node.replaceChildren();
      this.showMessage("");
      this.setStatus(this.model.status);
      this.showCancel(true);
    }
    if (this.el.pauses) this.el.pauses.replaceChildren();
    this.pauseTries = 0;
    this.follower = new Follower(runId, {
      onEvents: (events) => this.enqueue(events),
      onConnection: (state) => this.connection(state),
    });
    this.ticker = setInterval(() => this.paintClock(), 200);
    this.watchStall();
  }

  stopFollowing() {
    if (this.follower) this.follower.stop();
    this.follower = null;
    clearInterval(this.ticker);
    clearTimeout(this.stallTimer);
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
  }

  connection(state) {
    const el = this.el.message;
    if (!el || !this.model || this.model.finished) return;
    if (state === "reconnecting") {
      this.showMessage("Connection lost; reconnecting…");
      el.dataset.kind = "connection";
    } else if (state === "revoked") {
      this.showMessage("Your access to this flow was removed; this run is no longer followed.");
      el.dataset.kind = "revoked";
    } else if (state === "signed-out") {
      this.showMessage("You were signed out; this run is no longer followed. Sign in again to follow it.");
      el.dataset.kind = "revoked";
    } else if (el.dataset.kind === "connection") {
      this.showMessage("");
    }
  }

  enqueue(events) {
    let waitingSeen = false;
    let pausesChanged = false;
    let budgetSeen = false;
    let resumedSeen = false;
    for (const event of events) {
      this.queue.push(event);
      if (event.type === "node_item") this.itemEvents.push(event);
      // The run page's approvals section (runs/_approvals.html) fetches the form.
      else if (event.type === "node_waiting") waitingSeen = true;
      // ... and its budget section (runs/_budget.html) the pause and the raise.
      else if (event.type === "run_paused" || event.type === "run_resumed") budgetSeen = true;
      // Answered, here or anywhere else: the section drops the form it showed.
      else if (event.type === "node_resumed") resumedSeen = true;
      if (PAUSE_EVENTS.has(event.type)) pausesChanged = true;
    }
    if (waitingSeen) document.body.dispatchEvent(new CustomEvent("switchyard-run-waiting", { bubbles: true }));
    if (resumedSeen) document.body.dispatchEvent(new CustomEvent("switchyard-run-resumed", { bubbles: true }));
    if (budgetSeen) document.body.dispatchEvent(new CustomEvent("switchyard-run-paused", { bubbles: true }));
    if (pausesChanged) this.refreshPauses();
    this.lastEventAt = Date.now();
    this.schedule();
  }

  schedule() {
    if (!this.frame && this.head < this.queue.length) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.drain();
      });
    }
  }

  /** Apply queued events for one frame's budget, then paint what changed, once. */
  drain() {
    if (!this.model || !this.canvasReady) return;
    const start = performance.now();
    const queue = this.queue;
    while (this.head < queue.length) {
      this.model.apply(queue[this.head++]);
      if ((this.head & 255) === 0 && performance.now() - start > FRAME_BUDGET_MS) break;
    }
    if (this.head >= queue.length) {
      this.queue = [];
      this.head = 0;
    }
    this.paint(this.model.takeChanges());
    this.schedule();
  }

  paint(changes) {
    this.paintNodes(changes);
    if (changes.run || changes.reset || changes.nodes.length) {
      // A running run whose nodes wait (a breakpoint, an approval) reads as waiting.
      this.setStatus(this.model.status === "running" && this.anyWaiting() ? "waiting" : this.model.status);
    }
    if (changes.run || changes.reset) {
      this.paintClock();
      this.paintTime("[data-run-started-at]", this.model.startTs);
      if (this.el.usage) this.el.usage.textContent = formatUsage(this.model.usage);
      if (this.el.cost && this.model.cost != null) this.el.cost.textContent = formatUsd(this.model.cost);
      if (this.el.providerCache) {
        const text = this.model.providerCacheText;
        this.el.providerCache.textContent = text;
        this.el.providerCache.hidden = !text;
      }
    }
    if (changes.finished) this.finished();
  }

  anyWaiting() {
    for (const look of this.model.nodes.values()) if (look && look.status === "waiting") return true;
    return false;
  }

  /** The nodes' part of a paint: canvas, steps, the open node card. */
  paintNodes(changes) {
    if (changes.full && Switchyard.canvas && typeof Switchyard.canvas.paintRunState === "function") {
      const states = changes.nodes.map(([id, c]) => [id, { status: c.status, text: c.text, iteration: c.iteration,
        done: c.progress ? c.progress[0] : 0, total: c.progress ? c.progress[1] : 0, badges: c.badges, error: c.error }]);
      canvasCall("paintRunState", states, changes.marks);
      this.paintStepsFrom(changes.nodes);
    } else {
      if (changes.reset) canvasCall("resetRunState");
      for (const [id, change] of changes.nodes) {
        if (changes.full) {
          change.statusChanged = true;
          change.setText = change.text;
          change.progressChanged = change.iterationChanged = true;
        }
        if (change.statusChanged) {
          canvasCall("setStatus", id, change.status);
          canvasCall("setError", id, change.status === "failed" ? change.error || "" : "");
        }
        if (change.setText !== undefined) canvasCall("setText", id, change.setText);
        else if (change.append) canvasCall("appendText", id, change.append);
        if (change.progressChanged && change.progress) canvasCall("setProgress", id, change.progress[0], change.progress[1]);
        if (change.iterationChanged && change.iteration > 1) canvasCall("setIteration", id, change.iteration);
        if (change.badges) canvasCall("setNodeBadges", id, change.badges);
        this.paintStep(id, change);
      }
      for (const [node, port] of changes.marks) canvasCall("markEdges", node, port);
    }
    if (changes.nodes.length) {
      this.refreshNodeCard(changes.nodes);
      document.dispatchEvent(new CustomEvent("switchyard:run-painted"));
    }
  }

  /** Every step row from a whole state: rows of nodes it does not name go back to idle. */
  paintStepsFrom(nodes) {
    const seen = new Set();
    for (const [id, change] of nodes) {
      seen.add(id);
      this.paintStep(id, change);
    }
    for (const [id, item] of this.steps()) {
      if (!seen.has(id) && item.dataset.status !== "idle") this.paintStep(id, { status: "idle" });
    }
  }

  /** The step rows by node id, looked up once per list the server placed. */
  steps() {
    const list = this.el.steps && this.el.steps.querySelector("[data-run-steps-list]");
    if (!list) return new Map();
    if (!this.stepItems || this.stepList !== list) {
      this.stepList = list;
      this.stepItems = new Map([...list.querySelectorAll("li[data-node]")].map((li) => [li.dataset.node, li]));
    }
    return this.stepItems;
  }

  paintStep(id, change) {
    const item = this.steps().get(id);
    if (!item) return;
    item.dataset.status = change.status;
    const meta = item.querySelector("[data-step-meta]");
    if (!meta) return;
    let text = "";
    if (change.status === "running") {
      text = change.note || (change.progress ? change.progress[0] + "/" + change.progress[1] : "running");
    } else if (change.status === "done") {
      text = formatSeconds(change.duration);
    } else if (change.status === "failed") {
      text = "failed";
    } else if (change.status !== "idle" && change.status !== "queued") {
      text = change.status;
    }
    if (change.iteration > 1) text += (text ? " · " : "") + "×" + change.iteration;
    meta.textContent = text;
    item.title = change.status === "failed" ? change.error : change.note || "";
  }

  paintAllSteps() {
    if (!this.model) return;
    for (const n of this.model.nodes.values()) {
      this.paintStep(n.id, { status: n.status, note: n.note, duration: n.duration, iteration: n.iteration,
        progress: n.progress, error: n.error });
    }
  }

  refreshNodeCard(nodes) {
    const card = this.el.node && this.el.node.querySelector("[data-node-card]");
    if (!card) return;
    const id = card.dataset.nodeCard;
    const change = nodes.find(([nodeId]) => nodeId === id);
    if (!change) return;
    const c = change[1];
    if (c.status === "running" && card.dataset.nodeType === "map") {
      // A running map's card lists its items as they go: asked again at most twice a second
      // while they change, so a busy map costs a few requests, not one per event.
      if (this.cardTimer || (!c.statusChanged && c.append === undefined && c.setText === undefined)) return;
      this.cardTimer = setTimeout(() => {
        this.cardTimer = null;
        this.showNode(id);
      }, 500);
      return;
    }
    if (!c.statusChanged || c.status === "running") return;
    // A replay moving fast (or a seek) would ask for a card per frame: ask once it settles.
    clearTimeout(this.cardTimer);
    this.cardTimer = setTimeout(() => {
      this.cardTimer = null;
      this.showNode(id);
    }, this.replay ? 150 : 0);
  }

  setStatus(status) {
    const { status: el, statusText } = this.el;
    if (el) el.dataset.status = status;
    // Idle reads as the server put it ("Ready to run" once the flow has runs).
    if (this.idleText === undefined && statusText) this.idleText = statusText.textContent;
    const text = status === "idle" && this.idleText ? this.idleText : STATUS_TEXT[status];
    if (statusText) statusText.textContent = text || status;
  }

  paintTime(selector, ts) {
    const el = this.$(selector);
    // As the server writes it: UTC, to the second.
    if (el && typeof ts === "number") el.textContent = new Date(ts * 1000).toISOString().slice(11, 19);
  }

  paintClock() {
    const m = this.model;
    if (!this.el.elapsed || !m || m.startTs == null) return;
    let end = m.endTs;
    if (end == null) end = Math.max(m.lastTs || m.startTs, Date.now() / 1000 - this.skew);
    this.el.elapsed.textContent = formatSeconds(end - m.startTs);
    if (m.finished) clearInterval(this.ticker);
  }

  watchStall() {
    // A run can end without run_finished (its flow failed to compile, the server
    // restarted): when the socket has said nothing for a while, ask the API.
    clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => {
      if (!this.model || this.model.finished) return;
      const quiet = Date.now() - (this.lastEventAt || 0) >= STALL_CHECK_MS;
      if (!quiet) return this.watchStall();
      const runId = this.runId;
      fetch("/api/runs/" + runId, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((r) => (r.ok ? r.json() : null))
        .catch(() => null)
        .then((run) => {
          if (runId !== this.runId || !this.model || this.model.finished) return;
          const ws = this.follower && this.follower.ws;
          // Only while connected: a socket that is up and quiet has nothing more to send.
          if (run && FINISHED.has(run.status) && ws && ws.readyState === WebSocket.OPEN) {
            this.model.apply({ type: "run_finished", status: run.status, error: run.error || "" });
            this.paint(this.model.takeChanges());
          } else {
            this.watchStall();
          }
        });
    }, STALL_CHECK_MS);
  }

  finished() {
    if (this.el.open == null && !this.finishedSent) {
      // The run page: the timeline and the replay player load the finished run.
      this.finishedSent = true;
      document.body.dispatchEvent(new CustomEvent("switchyard-run-finished", { bubbles: true, detail: { runId: this.runId } }));
    }
    this.paintTime("[data-run-finished-at]", this.model.endTs);
    this.showCancel(false);
    if (this.follower) this.follower.stop();
    clearTimeout(this.stallTimer);
    this.showMessage("");
    if (this.el.outputs && !this.outputsShown) {
      this.outputsShown = true;
      const runId = this.runId;
      // After the placeholder placed when the run started, never before it.
      Promise.resolve(this.outputsLoading)
        .catch(() => null)
        .then(() => runId === this.runId && place("/runs/" + runId + "/outputs/", this.el.outputs));
    }
    if (this.el.open) runsChanged();
  }

  showCancel(running) {
    const button = this.el.cancel;
    if (!button) return;
    button.hidden = !running;
    button.disabled = false;
    button.textContent = "Cancel";
  }

  cancel() {
    const button = this.el.cancel;
    if (this.runId == null || (this.model && this.model.finished)) return;
    button.disabled = true;
    button.textContent = "Cancelling…";
    postJSON("/api/runs/" + this.runId + "/cancel", {})
      .then((result) => {
        if (!result.ok && !(this.model && this.model.finished)) {
          this.showMessage((result.data && result.data.detail) || "Could not cancel (HTTP " + result.status + ").", true);
          this.showCancel(true);
        }
      })
      .catch(() => {
        this.showMessage("Could not reach the server to cancel.", true);
        this.showCancel(true);
      });
  }

  showMessage(text, isError) {
    const el = this.el.message;
    if (!el) return;
    el.textContent = text;
    el.hidden = !text;
    el.classList.toggle("error", Boolean(isError));
    delete el.dataset.kind;
  }

  // -- a pause at a breakpoint (runs/_breakpoints.html)

  /** Place where the run is paused; the server asks again shortly while it is parking. */
  refreshPauses() {
    const slot = this.el.pauses;
    const runId = this.runId;
    if (!slot || runId == null || this.root.hasAttribute("data-public")) return;
    clearTimeout(this.pauseTimer);
    fetch("/runs/" + runId + "/breakpoints/", { credentials: "same-origin" })
      .then((r) => (r.ok ? r.text() : ""))
      .catch(() => "")
      .then((html) => {
        if (runId !== this.runId) return;
        slot.innerHTML = html;
        const section = slot.querySelector("[data-run-breakpoints]");
        // node_waiting goes out before the driver stores the run as waiting.
        if (section && section.hasAttribute("data-parking") && this.pauseTries++ < PAUSE_TRIES) {
          this.pauseTimer = setTimeout(() => this.refreshPauses(), PAUSE_RETRY_MS);
        }
      });
  }

  /** Continue, Step or Stop: the answer's section (with why, when refused) replaces it. */
  async answerPause(form, submitter) {
    const slot = this.el.pauses;
    const body = new FormData(form);
    if (submitter && submitter.name) body.set(submitter.name, submitter.value);
    const buttons = [...form.querySelectorAll("button")];
    buttons.forEach((b) => (b.disabled = true));
    try {
      // getAttribute: form.action would be the buttons named "action".
      const response = await fetch(form.getAttribute("action"), {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken() },
        body,
      });
      const html = await response.text();
      // Refused answers (400 with why, 409 answered already) come with the section too.
      if (slot && ANSWERED.has(response.status)) slot.innerHTML = html;
      else this.showMessage("Could not answer the pause (HTTP " + response.status + ").", true);
    } catch (error) {
      this.showMessage("Could not reach the server; the run is still paused.", true);
    } finally {
      buttons.forEach((b) => b.isConnected && (b.disabled = false));
    }
  }

  // -- the run form (editor)

  formOpen() {
    return Boolean(this.el.formSlot && this.el.formSlot.querySelector("[data-run-form]"));
  }

  closeForm(focusButton) {
    if (!this.el.formSlot) return;
    this.el.formSlot.replaceChildren();
    if (this.el.open) {
      this.el.open.setAttribute("aria-expanded", "false");
      if (focusButton) this.el.open.focus();
    }
  }

  async saveIfDirty() {
    const dirty = canvasCall("isDirty");
    if (!dirty) return true;
    this.showMessage("Saving the flow…");
    try {
      await canvasCall("save");
      this.showMessage("");
      return true;
    } catch (error) {
      const detail = (error && (error.detail || error.message)) || "";
      this.showMessage("The flow was not saved, so it did not run" + (detail ? ": " + sentence(detail) : "."), true);
      return false;
    }
  }

  async toggleForm() {
    const { open, formSlot } = this.el;
    if (this.formOpen()) {
      this.closeForm(false);
      return;
    }
    this.clearProblems();
    open.disabled = true;
    try {
      if (!(await this.saveIfDirty())) return;
      await place(open.dataset.formUrl, formSlot);
      if (!this.formOpen()) throw new Error("no form");
      open.setAttribute("aria-expanded", "true");
      const note = formSlot.querySelector("[data-run-breakpoints-note]");
      const marked = canvasCall("breakpoints") || [];
      if (note && marked.length) {
        note.textContent = "This run pauses before " + marked.join(", ") + " (your breakpoints).";
        note.hidden = false;
      }
      const first = formSlot.querySelector("textarea, [data-testid=run-submit]");
      if (first) first.focus();
    } catch (error) {
      this.showMessage("Could not load the run form.", true);
    } finally {
      open.disabled = false;
    }
  }

  async submit(form) {
    this.clearProblems();
    let inputs;
    try {
      inputs = collectInputs(form);
    } catch (error) {
      if (!(error instanceof BadValue)) throw error;
      // Broken JSON is refused here, named, rather than sent as text by surprise.
      if (error.field) {
        error.field.setAttribute("aria-invalid", "true");
        error.field.focus();
      }
      this.showMessage(error.message, true);
      return;
    }
    const button = form.querySelector("[type=submit]");
    if (button) button.disabled = true;
    try {
      if (!(await this.saveIfDirty())) return;
      const flowId = form.dataset.flowId || this.root.dataset.flowId;
      this.showMessage("Starting the run…");
      const ignoreCache = form.querySelector("[data-ignore-cache]");
      const breakpoints = canvasCall("breakpoints") || [];
      const body = { inputs, ignore_cache: Boolean(ignoreCache && ignoreCache.checked) };
      // File inputs go as parts of a multipart body, the JSON beside them (webapp/runs/uploads.py).
      const files = collectFiles(form);
      const send = (url, json) =>
        Object.keys(files).length ? postForm(url, uploadBody(json, files)) : postJSON(url, json);
      // Empty: the flow's budget, if it has one (the server's to apply).
      const budget = form.querySelector("[data-run-budget]");
      if (budget && budget.value.trim() !== "") body.budget_usd = Number(budget.value);
      const batchLane = form.querySelector("[data-run-batch]");
      if (batchLane && batchLane.checked) body.latency = "batch";
      // Breakpoints are the editor's alone: only its own endpoint takes them, never the API.
      const result = breakpoints.length
        ? await send("/flows/" + flowId + "/editor-runs/", { ...body, breakpoints })
        : await send("/api/flows/" + flowId + "/runs", {
            // The editor runs what it shows, which may be newer than the published version.
            version: "current",
            ...body,
          });
      if (result.status === 201 || result.ok) {
        this.closeForm(false);
        this.follow(result.data.id);
        runsChanged();
      } else {
        this.showProblems(result.data, result.status, form);
      }
    } catch (error) {
      this.showMessage("Could not reach the server; the run did not start.", true);
    } finally {
      if (button && button.isConnected) button.disabled = false;
    }
  }

  clearProblems() {
    canvasCall("clearProblems");
    const list = this.el.problems;
    if (list) {
      list.replaceChildren();
      list.hidden = true;
    }
    this.root.querySelectorAll("[data-input-name][aria-invalid]").forEach((f) => f.removeAttribute("aria-invalid"));
    this.showMessage("");
  }

  showProblems(data, status, form) {
    data = data || {};
    const problems = Array.isArray(data.problems) ? data.problems : [];
    const located = problems.filter((p) => p.node).map((p) => ({ node: p.node, message: p.message }));
    if (located.length) canvasCall("showProblems", located);
    this.showMessage(sentence(data.detail || "the run did not start (HTTP " + status + ")"), true);
    const list = this.el.problems;
    if (list && problems.length) {
      for (const problem of problems) {
        const item = document.createElement("li");
        item.textContent = problem.text || problem.message;
        if (problem.node) item.dataset.node = problem.node;
        list.append(item);
        const field = problem.node && form && form.querySelector('[data-node="' + CSS.escape(problem.node) + '"]');
        if (field) field.setAttribute("aria-invalid", "true");
      }
      list.hidden = false;
    }
    const invalid = form && form.querySelector("[aria-invalid]");
    if (invalid) invalid.focus();
  }
}

export function init() {
  for (const root of document.querySelectorAll("[data-run-view]")) {
    if (!root.switchyardRunView) root.switchyardRunView = new RunView(root);
  }
}

// For scripts and tests that reach the run view from the page (window.Switchyard.live).
Switchyard.live = {
  RunModel, Follower, RunView, parseValue, collectInputs, preview, formatSeconds, formatUsd, nodeBadges, init,
};

// Modules run after the document is parsed.
init();
