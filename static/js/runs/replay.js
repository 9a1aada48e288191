/* Switchyard replay: play a finished run's recorded events back on the run page's canvas.

   Reads the event log only (GET /api/runs/<id>/events, paged, or a share link's
   data-events-url), never anything that would
   run a node or call a model. The server renders the bar (templates/runs/_replay.html,
   re-placed from its data-replay-url when a live run finishes) and says there whether a
   replay is possible; this file wires its data-replay-* hooks and drives model.js's
   RunModel and view.js's RunView painting.

   - Position = how many events are applied (0 … N). The scrubber is a range over it.
   - Seek: restore the nearest snapshot at or before the target (one every SNAPSHOT_EVERY
     events, taken while the log is first folded), fold the few events after it, paint
     every node once. Small steps forward fold onto the current state instead.
   - Play: 1x follows the recorded `ts` (pauses longer than data-gap-cap seconds are cut to
     it), 4x is four times faster, instant jumps to the end. One fold and paint per frame.
   - Keys: Space plays or pauses, → steps one event.
*/
import { isTyping } from "../lib/keys.js";
import { RunModel } from "./model.js";
// The run view sets itself up first (root.switchyardRunView): the player attaches to it.
import "./view.js";

const Switchyard = (window.Switchyard = window.Switchyard || {});
const PAGE = 5000; // the API's largest page, unless the bar says otherwise
export const SNAPSHOT_EVERY = 250;
const NOT_RANGE = { range: false }; // the scrubber: Space plays, arrows step

/** Every recorded event of a run, in seq order, paging through the API's limit, until
    lastSeq (the run's, as the server rendered it) or an empty page. */
export async function loadEvents(baseUrl, lastSeq, pageSize) {
  const limit = pageSize > 0 ? pageSize : PAGE;
  const events = [];
  for (;;) {
    const after = events.length ? events[events.length - 1].seq : 0;
    const response = await fetch(baseUrl + "?after=" + after + "&limit=" + limit, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) throw new Error("the events did not load (HTTP " + response.status + ")");
    const body = await response.json();
    // The API answers a page ({items, next}); a share link's events URL a plain list.
    const page = Array.isArray(body) ? body : body.items;
    for (const event of page) events.push(event);
    const last = !page.length || (!Array.isArray(body) && !body.next);
    if (last || (lastSeq > 0 && events[events.length - 1].seq >= lastSeq)) return events;
  }
}

/** Place server-rendered HTML (the bar has no htmx attributes of its own). */
function place(url, target) {
  return fetch(url, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.text() : Promise.reject(new Error("HTTP " + r.status))))
    .then((html) => {
      target.innerHTML = html;
    });
}

export class Player {
  constructor(view, slot) {
    this.view = view;
    this.slot = slot;
    this.events = [];
    this.at = null; // playback time of each event, seconds from the first
    this.snapshots = [];
    this.model = null;
    this.pos = 0;
    this.total = 0;
    this.playing = false;
    this.frame = 0;
    this.pending = null; // a scrubber position waiting for the next frame
    this.ready = false;
    this.loading = null;
    this.bind();
    this.wire();
    view.attachReplay(this);
    if (this.state() === "ready" || this.state() === "limited") this.load();
  }

  $(selector) {
    return this.slot.querySelector(selector);
  }

  state() {
    const bar = this.$("[data-replay]");
    return bar ? bar.dataset.replayState : "unavailable";
  }

  /** (Re)find the controls: the server may have placed a new bar. */
  wire() {
    this.el = {
      bar: this.$("[data-replay]"),
      play: this.$("[data-replay-play]"),
      icon: this.$("[data-replay-play-icon]"),
      step: this.$("[data-replay-step]"),
      speed: this.$("[data-replay-speed]"),
      scrub: this.$("[data-replay-scrub]"),
      now: this.$("[data-replay-now]"),
    };
    const cap = this.el.bar ? parseFloat(this.el.bar.dataset.gapCap) : NaN;
    this.gapCap = isFinite(cap) && cap > 0 ? cap : 2;
    if (this.ready) this.enable(true);
  }

  bind() {
    this.slot.addEventListener("click", (event) => {
      if (event.target.closest("[data-replay-play]")) this.toggle();
      else if (event.target.closest("[data-replay-step]")) this.step();
    });
    this.slot.addEventListener("input", (event) => {
      if (!event.target.matches("[data-replay-scrub]")) return;
      this.pause();
      this.seekSoon(Number(event.target.value));
    });
    this.slot.addEventListener("change", (event) => {
      if (event.target.matches("[data-replay-speed]") && this.playing) {
        // Carry on from here at the new pace.
        this.pause();
        this.play();
      }
    });
    document.addEventListener("keydown", (event) => {
      if (!this.ready || event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key === " " || event.key === "Spacebar") {
        if (!this.ownsSpace(event.target)) return;
        event.preventDefault(); // no page scroll, no second toggle from a focused button
        this.toggle();
      } else if (event.key === "ArrowRight") {
        // The scrubber moves itself (and seeks) on its own arrow keys.
        if (isTyping(event.target, NOT_RANGE) || event.target.matches("[data-replay-scrub]")) return;
        event.preventDefault();
        this.step();
      }
    });
    // A focused button would also "click" on the key's release: swallow that one.
    document.addEventListener("keyup", (event) => {
      if ((event.key === " " || event.key === "Spacebar") && this.ready && this.ownsSpace(event.target)) {
        event.preventDefault();
      }
    });
    document.body.addEventListener("switchyard-run-finished", () => this.runFinished());
    document.body.addEventListener("htmx:afterSwap", (event) => {
      if (event.target.closest && event.target.closest("[data-run-timeline]")) this.paintCursor();
    });
  }

  /** Space plays and pauses, except where it types or presses another control. */
  ownsSpace(target) {
    if (isTyping(target, NOT_RANGE)) return false;
    const control = target && target.closest && target.closest("button, a[href], summary, [role=button]");
    return !control || this.slot.contains(control);
  }

  /** A live run just finished: ask the server for the bar again, then load the log. */
  runFinished() {
    const url = this.el.bar && this.el.bar.dataset.replayUrl;
    if (!url) return;
    place(url, this.slot)
      .then(() => {
        this.wire();
        if (!this.ready && (this.state() === "ready" || this.state() === "limited")) this.load();
      })
      .catch((error) => this.say("Replay unavailable: " + error.message + "."));
  }

  load() {
    if (this.loading) return this.loading;
    const started = performance.now();
    this.say("Loading the events…");
    const bar = this.el.bar ? this.el.bar.dataset : {};
    // The same URL as the page's preload link, so the first page comes from it.
    // A share link's page names its own events URL (no account, no API).
    const eventsUrl = this.view.root.dataset.eventsUrl || "/api/runs/" + this.view.runId + "/events";
    this.loading = loadEvents(eventsUrl, Number(bar.lastSeq) || 0, Number(bar.eventsPage) || 0)
      .then((events) => {
        const fetched = performance.now();
        this.prepare(events);
        this.timing = { fetch: fetched - started, fold: this.foldMs, paint: performance.now() - fetched - this.foldMs };
      })
      // Ready means playable on a drawn canvas, which shows the final state by then.
      .then(() => this.view.canvasDrawn)
      .then(() => {
        this.loadedMs = performance.now() - started;
        document.documentElement.dataset.replay = "ready";
        document.dispatchEvent(new CustomEvent("switchyard:replay-ready", { detail: { events: this.total } }));
      })
      .catch((error) => {
        this.say("Replay unavailable: " + (error && error.message ? error.message : error) + ".");
        this.loading = null;
        // The final state still shows, from the websocket as for a live run.
        const view = this.view;
        if (!view.follower && !(view.model && view.model.finished)) {
          view.follow(view.runId, { nodeIds: view.nodeIds, runPage: true });
        }
      });
    return this.loading;
  }

  /** Fold the whole log once, keeping a snapshot every SNAPSHOT_EVERY events. */
  prepare(events) {
    const folding = performance.now();
    this.events = events;
    this.total = events.length;
    this.at = new Float64Array(this.total);
    let clock = 0;
    for (let i = 1; i < this.total; i++) {
      const gap = (events[i].ts || 0) - (events[i - 1].ts || 0);
      clock += Math.min(Math.max(isFinite(gap) ? gap : 0, 0), this.gapCap);
      this.at[i] = clock;
    }
    this.t0 = events.length ? events[0].ts : 0;
    const model = new RunModel(this.view.nodeIds);
    this.snapshots = [model.snapshot()];
    for (let i = 0; i < this.total; i++) {
      model.apply(events[i]);
      if ((i + 1) % SNAPSHOT_EVERY === 0) this.snapshots.push(model.snapshot());
    }
    this.model = model;
    this.pos = this.total;
    this.foldMs = performance.now() - folding;
    if (this.el.scrub) {
      this.el.scrub.max = String(this.total);
      this.el.scrub.value = String(this.total);
    }
    this.ready = true;
    this.enable(true);
    // The final state, as the page opens. A live run's view already shows it.
    if (!this.view.model || !this.view.model.finished) this.view.showModel(model);
    else model.clearChanges();
    this.paintNow();
  }

  enable(on) {
    for (const el of [this.el.play, this.el.step, this.el.speed, this.el.scrub]) if (el) el.disabled = !on;
    if (this.el.bar) this.el.bar.dataset.ready = on ? "true" : "false";
  }

  say(text) {
    if (this.el.now) this.el.now.textContent = text;
  }

  // -- position

  /** The seq the inspector folds up to, or null at the end (the whole run). */
  upto() {
    if (!this.ready || this.pos >= this.total) return null;
    return this.pos ? this.events[this.pos - 1].seq : 0;
  }

  seekSoon(target) {
    this.pending = target;
    if (this.seekFrame) return;
    this.seekFrame = requestAnimationFrame(() => {
      this.seekFrame = 0;
      const to = this.pending;
      this.pending = null;
      if (to != null) this.seek(to);
    });
  }

  seek(target) {
    if (!this.ready) return;
    target = Math.max(0, Math.min(this.total, Math.round(target)));
    if (target === this.pos) return this.paintNow();
    if (target > this.pos && target - this.pos <= SNAPSHOT_EVERY) {
      this.advance(target);
      return;
    }
    const k = Math.floor(target / SNAPSHOT_EVERY);
    const model = RunModel.restore(this.snapshots[k], this.view.nodeIds);
    for (let i = k * SNAPSHOT_EVERY; i < target; i++) model.apply(this.events[i]);
    this.model = model;
    this.pos = target;
    this.view.showModel(model);
    this.paintNow();
  }

  /** Fold events up to `target` onto the current state and paint only what changed. */
  advance(target) {
    if (this.view.model !== this.model) {
      this.view.model = this.model;
    }
    for (let i = this.pos; i < target; i++) this.model.apply(this.events[i]);
    this.pos = target;
    this.view.paintNodes(this.model.takeChanges());
    this.paintNow();
  }

  paintNow() {
    if (this.el.scrub && Number(this.el.scrub.value) !== this.pos) this.el.scrub.value = String(this.pos);
    if (this.el.bar) this.el.bar.dataset.position = String(this.pos);
    const event = this.pos ? this.events[this.pos - 1] : null;
    if (!event) this.say("Start · 0 / " + this.total + " events");
    else {
      const offset = typeof event.ts === "number" ? ((event.ts - this.t0) >= 0 ? "+" : "") + (event.ts - this.t0).toFixed(2) + " s" : "";
      const parts = ["#" + event.seq + " / " + this.events[this.total - 1].seq, event.type];
      if (event.node != null) parts.push(event.node + (event.iteration > 1 ? " ×" + event.iteration : ""));
      if (offset) parts.push(offset);
      this.say(parts.join(" · "));
    }
    this.paintCursor();
  }

  /** The timeline's cursor line at the current event's time; hidden at the end. */
  paintCursor() {
    const timeline = document.querySelector("[data-timeline]");
    const line = timeline && timeline.querySelector("[data-timeline-cursor]");
    if (!line) return;
    const event = this.pos ? this.events[this.pos - 1] : this.events[0];
    if (!this.ready || this.pos >= this.total || !event) {
      line.setAttribute("visibility", "hidden");
      return;
    }
    const t0 = parseFloat(timeline.dataset.t0);
    const x0 = parseFloat(timeline.dataset.x0);
    const scale = parseFloat(timeline.dataset.scale);
    const x = x0 + Math.max(0, (event.ts || t0) - t0) * scale;
    line.setAttribute("x1", String(x));
    line.setAttribute("x2", String(x));
    line.setAttribute("visibility", "visible");
  }

  // -- playing

  speed() {
    const value = this.el.speed ? Number(this.el.speed.value) : 4;
    return isFinite(value) ? value : 4;
  }

  toggle() {
    if (this.playing) this.pause();
    else this.play();
  }

  play() {
    if (!this.ready || this.playing) return;
    if (this.pos >= this.total) this.seek(0);
    const speed = this.speed();
    if (speed <= 0) {
      this.seek(this.total);
      return;
    }
    this.playing = true;
    this.showPlaying();
    this.clock = this.pos ? this.at[this.pos - 1] : 0;
    this.lastFrame = performance.now();
    const tick = (now) => {
      if (!this.playing) return;
      this.clock += (Math.max(now - this.lastFrame, 0) / 1000) * speed;
      this.lastFrame = now;
      let target = this.pos;
      while (target < this.total && this.at[target] <= this.clock) target++;
      if (target > this.pos) this.advance(target);
      if (this.pos >= this.total) this.pause();
      else this.frame = requestAnimationFrame(tick);
    };
    this.frame = requestAnimationFrame(tick);
  }

  pause() {
    if (!this.playing) return;
    this.playing = false;
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.showPlaying();
  }

  step() {
    if (!this.ready) return;
    this.pause();
    if (this.pos >= this.total) this.seek(0);
    this.seek(this.pos + 1);
  }

  showPlaying() {
    const { play, icon, bar } = this.el;
    if (bar) bar.dataset.playing = this.playing ? "true" : "false";
    if (play) play.setAttribute("aria-label", this.playing ? "Pause" : "Play");
    if (icon) icon.innerHTML = this.playing ? "&#10073;&#10073;" : "&#9654;";
  }
}

export function init() {
  const slot = document.querySelector("[data-replay-slot]");
  const root = slot && slot.closest("[data-run-view]");
  const view = root && root.switchyardRunView;
  if (!view || slot.switchyardReplay) return;
  slot.switchyardReplay = new Player(view, slot);
  // A click on the timeline opens that node's inspector (as of the replay's position).
  const timeline = root.querySelector("[data-run-timeline]");
  if (timeline) {
    timeline.addEventListener("click", (event) => {
      const target = event.target.closest && event.target.closest("[data-node]");
      if (target) view.showNode(target.dataset.node, { reveal: true });
    });
  }
}

Switchyard.replay = { Player, loadEvents, init, SNAPSHOT_EVERY };

init();
