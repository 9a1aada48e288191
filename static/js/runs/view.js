/* Switchyard live runs: the run panel in the editor and the run page.

   The server renders every piece of HTML (run form, steps, outputs, node cards); this
   file places it, follows a run's events over the websocket and paints them on the
   canvas (window.Switchyard.canvas) and on the data-run-* hooks of a [data-run-view].

   - RunModel: the events folded into per-node state; pure, no DOM. It records what
     changed since the last paint, so a frame paints each node once however many
     events it got (a 10k-event replay costs a few frames, not 10k repaints).
   - Follower: the websocket /ws/runs/<id>/?after=SEQ. Events arrive in seq order; on an
     unexpected close it reconnects after the last seq it saw, with backoff, so nothing
     is lost or applied twice. While the socket is quiet it pings every few seconds, and
     the server answers with whatever the database holds that the channel layer did not
     bring (Redis down). It stops by itself after run_finished.
   - RunView: one [data-run-view] root: queue events, apply them once per animation
     frame, paint the canvas and the panel, run form, cancel, outputs.

   On the run page of a finished run the replay player (replay.js) loads the event log
   instead of the websocket and drives the same RunModel and painting: it attaches itself
   with view.attachReplay(player), paints whole states with view.showModel(model) and
   incremental ones with view.paintNodes(model.takeChanges()).
*/
(function () {
  "use strict";

  const Switchyard = (window.Switchyard = window.Switchyard || {});
  if (Switchyard.live) return;

  const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
  const STATUS_TEXT = {
    idle: "Not run yet",
    queued: "Queued",
    running: "Running",
    succeeded: "Succeeded",
    failed: "Failed",
    cancelled: "Cancelled",
  };
  const FRAME_BUDGET_MS = 10;
  const PREVIEW_CHARS = 4000;
  const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];
  const STALL_CHECK_MS = 15000;
  const ACCESS_REVOKED = 4403;
  // The token or session that opened the socket is gone (signed out): asking again is refused.
  const SIGNED_OUT = 4401;
  // The server could not reach its channel layer: it sent what it had; come back for more.
  const LAYER_DOWN = 4503;
  const PING_MS = 3000;
  const PING = '{"type":"ping"}'; // exactly this text: the server compares it
  const NODE_ID = /^[A-Za-z_][A-Za-z0-9_-]{0,99}$/; // graphs.document.IDENTIFIER

  // ---- Values --------------------------------------------------------------

  /** A form value the way the CLI reads one: JSON when it parses, else the text itself.
      An empty field is left out (the input's default applies). */
  function parseValue(text) {
    if (text.trim() === "") return undefined;
    try {
      return JSON.parse(text);
    } catch (_) {
      return text;
    }
  }

  function collectInputs(form) {
    const inputs = {};
    for (const field of form.querySelectorAll("[data-input-name]")) {
      const value = parseValue(field.value);
      if (value !== undefined) inputs[field.dataset.inputName] = value;
    }
    return inputs;
  }

  function preview(output) {
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

  /** "the run cannot start" -> "The run cannot start." */
  function sentence(text) {
    text = String(text || "").trim();
    if (!text) return "";
    text = text[0].toUpperCase() + text.slice(1);
    return /[.!?…:]$/.test(text) ? text : text + ".";
  }

  function formatSeconds(s) {
    if (s == null || !isFinite(s) || s < 0) return "";
    if (s < 60) return s.toFixed(1) + " s";
    const m = Math.floor(s / 60);
    const rest = Math.floor(s - m * 60);
    return m + " m " + String(rest).padStart(2, "0") + " s";
  }

  /** Dollars as webapp.runs.pricing.format_usd writes them: $0, <$0.0001, $0.0042, $12.50. */
  function formatUsd(amount) {
    if (amount == null || !isFinite(amount)) return "—";
    amount = Number(amount);
    if (amount === 0) return "$0";
    const size = Math.abs(amount);
    if (size >= 1) return "$" + amount.toFixed(2);
    if (size < 0.0001) return "<$0.0001";
    return "$" + String(Number(amount.toPrecision(4)));
  }

  /** A node's tags on the canvas: its cost, and whether its output was cached or reused. */
  function nodeBadges(n) {
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

  function formatUsage(usage) {
    // Not toLocaleString: its first call loads locale data, a long pause mid-frame.
    const n = (x) => String(Math.round(Number(x) || 0)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return n(usage.input_tokens) + " in · " + n(usage.output_tokens) + " out tokens";
  }

  // ---- The run model (pure) ------------------------------------------------

  class RunModel {
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
          return true;
      }
      return true;
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

  // ---- The websocket -------------------------------------------------------

  class Follower {
    /** handlers: onEvents(events), onConnection("live" | "reconnecting" | "revoked" | "signed-out"). */
    constructor(runId, handlers, options) {
      this.runId = runId;
      this.handlers = handlers;
      this.lastSeq = (options && options.after) || 0;
      this.retries = 0;
      this.stopped = false;
      this.ws = null;
      this.timer = 0;
      // The seqs passed on, in order, and the sockets opened (for tests and debugging).
      this.seqs = [];
      this.opened = 0;
      this.heardAt = 0;
      this.pinger = setInterval(() => this.ping(), 1000);
      this.onOnline = () => {
        if (!this.ws && !this.stopped) {
          clearTimeout(this.timer);
          this.connect();
        }
      };
      window.addEventListener("online", this.onOnline);
      this.connect();
    }

    url() {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      return scheme + "//" + location.host + "/ws/runs/" + this.runId + "/?after=" + this.lastSeq;
    }

    connect() {
      if (this.stopped) return;
      let ws;
      try {
        ws = new WebSocket(this.url());
      } catch (_) {
        this.retry();
        return;
      }
      this.ws = ws;
      ws.onopen = () => {
        this.opened += 1;
        this.heardAt = Date.now();
        if (this.handlers.onConnection) this.handlers.onConnection("live");
      };
      ws.onmessage = (message) => this.receive(ws, message);
      ws.onclose = (event) => {
        if (this.ws !== ws) return;
        this.ws = null;
        if (this.stopped) return;
        if (event.code === ACCESS_REVOKED || event.code === SIGNED_OUT) {
          // The server closed it because this user lost access: asking again is refused.
          this.stopped = true;
          const state = event.code === SIGNED_OUT ? "signed-out" : "revoked";
          if (this.handlers.onConnection) this.handlers.onConnection(state);
          return;
        }
        if (event.code === LAYER_DOWN) {
          // Not lost: the backlog came, live updates did not. Poll again, gently.
          this.retry(2);
          return;
        }
        if (this.handlers.onConnection) this.handlers.onConnection("reconnecting");
        this.retry();
      };
    }

    /** A quiet open socket asks for what the channel layer may have dropped. */
    ping() {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN || Date.now() - this.heardAt < PING_MS) return;
      this.heardAt = Date.now();
      try {
        ws.send(PING);
      } catch (_) {
        // closing: onclose reconnects
      }
    }

    receive(ws, message) {
      if (this.ws !== ws) return;
      this.heardAt = Date.now();
      let data;
      try {
        data = JSON.parse(message.data);
      } catch (_) {
        return;
      }
      if (!data || !Array.isArray(data.events)) return;
      const fresh = [];
      let ended = false;
      for (const event of data.events) {
        if (event.seq <= this.lastSeq) continue;
        if (event.seq !== this.lastSeq + 1) {
          // Never expected (the server fills gaps), but if it happens: ask again from here.
          ws.close(4000, "gap");
          break;
        }
        fresh.push(event);
        this.seqs.push(event.seq);
        this.lastSeq = event.seq;
        if (event.type === "run_finished") ended = true;
      }
      this.retries = 0;
      if (ended) this.stop();
      if (fresh.length) this.handlers.onEvents(fresh);
    }

    /** Connect again after a backoff of at least BACKOFF_MS[minStep]. */
    retry(minStep) {
      this.retries = Math.max(this.retries, minStep || 0);
      const base = BACKOFF_MS[Math.min(this.retries, BACKOFF_MS.length - 1)];
      this.retries += 1;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.connect(), base * (0.75 + Math.random() * 0.5));
    }

    stop() {
      this.stopped = true;
      clearTimeout(this.timer);
      clearInterval(this.pinger);
      window.removeEventListener("online", this.onOnline);
      const ws = this.ws;
      this.ws = null;
      if (ws && ws.readyState <= 1) ws.close(1000, "done");
    }
  }

  // ---- Helpers -------------------------------------------------------------

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function postJSON(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
      body: JSON.stringify(body || {}),
    }).then((response) =>
      response
        .json()
        .catch(() => ({}))
        .then((data) => ({ status: response.status, ok: response.ok, data: data })),
    );
  }

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

  class RunView {
    constructor(root) {
      this.root = root;
      this.runId = null;
      this.model = null;
      this.follower = null;
      this.queue = [];
      this.head = 0;
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
      // The page embeds the run's version for canvas.js (#editor-data); draw it read-only.
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
      for (const event of events) this.queue.push(event);
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
      if (changes.run || changes.reset) {
        this.setStatus(this.model.status);
        this.paintClock();
        this.paintTime("[data-run-started-at]", this.model.startTs);
        if (this.el.usage) this.el.usage.textContent = formatUsage(this.model.usage);
        if (this.el.cost && this.model.cost != null) this.el.cost.textContent = formatUsd(this.model.cost);
      }
      if (changes.finished) this.finished();
    }

    /** The nodes' part of a paint: canvas, steps, the open node card. */
    paintNodes(changes) {
      if (changes.full && Switchyard.canvas && typeof Switchyard.canvas.paintRunState === "function") {
        const states = changes.nodes.map(([id, c]) => [id, { status: c.status, text: c.text, iteration: c.iteration,
          done: c.progress ? c.progress[0] : 0, total: c.progress ? c.progress[1] : 0, badges: c.badges }]);
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
          if (change.statusChanged) canvasCall("setStatus", id, change.status);
          if (change.setText !== undefined) canvasCall("setText", id, change.setText);
          else if (change.append) canvasCall("appendText", id, change.append);
          if (change.progressChanged && change.progress) canvasCall("setProgress", id, change.progress[0], change.progress[1]);
          if (change.iterationChanged && change.iteration > 1) canvasCall("setIteration", id, change.iteration);
          if (change.badges) canvasCall("setNodeBadges", id, change.badges);
          this.paintStep(id, change);
        }
        for (const [node, port] of changes.marks) canvasCall("markEdges", node, port);
      }
      if (changes.nodes.length) this.refreshNodeCard(changes.nodes);
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
      if (!change || !change[1].statusChanged || change[1].status === "running") return;
      // A replay moving fast (or a seek) would ask for a card per frame: ask once it settles.
      clearTimeout(this.cardTimer);
      this.cardTimer = setTimeout(() => this.showNode(id), this.replay ? 150 : 0);
    }

    setStatus(status) {
      const { status: el, statusText } = this.el;
      if (el) el.dataset.status = status;
      if (statusText) statusText.textContent = STATUS_TEXT[status] || status;
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
        const first = formSlot.querySelector("textarea, [data-testid=run-submit]");
        if (first) first.focus();
      } catch (error) {
        this.showMessage("Could not load the run form.", true);
      } finally {
        open.disabled = false;
      }
    }

    async submit(form) {
      const button = form.querySelector("[type=submit]");
      if (button) button.disabled = true;
      this.clearProblems();
      try {
        if (!(await this.saveIfDirty())) return;
        const flowId = form.dataset.flowId || this.root.dataset.flowId;
        this.showMessage("Starting the run…");
        const ignoreCache = form.querySelector("[data-ignore-cache]");
        const result = await postJSON("/api/flows/" + flowId + "/runs", {
          inputs: collectInputs(form),
          ignore_cache: Boolean(ignoreCache && ignoreCache.checked),
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

  function init() {
    for (const root of document.querySelectorAll("[data-run-view]")) {
      if (!root.switchyardRunView) root.switchyardRunView = new RunView(root);
    }
  }

  Switchyard.live = {
    RunModel, Follower, RunView, parseValue, collectInputs, preview, formatSeconds, formatUsd, nodeBadges, init,
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
