/* drill.js — a map node's inner flow, opened on the canvas in place of its parent.

   Double-click a map node (or "Open inner flow" in its form) and the canvas draws the
   map's inline flow (its config.flow): the same palette, wiring, forms, checks and undo.
   A breadcrumb above the canvas leads back up, any number of levels (maps in maps).

   The canvas holds one level at a time. Each level above the one drawn is a frame of
   the stack: the parent's document as it was when the map was opened, the map's id, the
   parent's view and undo history. The flow document (documentJSON, so saving, the dirty
   flag and drafts) is always the whole flow: compose() writes the drawn level back into
   its map's config, and that into its parent's, up to the top. Going back up draws the
   parent again and sets the map's config as one undoable change.

   A level left unchanged is written back as it was read (not re-serialised), so opening
   and leaving a map never makes the flow dirty.

   On a run page (read-only, with a run view), a drilled-in map shows one of its items:
   the inner nodes painted from that item's node_item events (runs/items.js). Each level
   keeps the item it shows: a map inside that item's flow opens onto its own items, as
   that item ran them (its events come nested in the item's; the first item_events items
   of each level send them). */
import { itemIndices, itemStates } from "../runs/items.js";

const clone = (value) => JSON.parse(JSON.stringify(value));

export class Drill {
  /**
   * host: the editor's internals this needs —
   *   graph, history, container, levelJSON(), drawLevel(doc, {view}), view(), rootName(),
 *   checkDirty(),
   *   paintItems(states, doneNodes)   run state of the drawn level (bypassing the page's
   *                                   run-state calls, which are the top level's)
   *   repaintRun()                    ask the run view to paint the top level again
   */
  constructor(host) {
    this.host = host;
    this.stack = [];
    this.bar = null;
    const { graph } = host;
    graph.on("node:dblclick", ({ node }) => {
      if ((node.getData() || {}).type === "map") this.open(node.id);
    });
    // The map's form (server-rendered) gets a button to open its flow here.
    document.body.addEventListener("htmx:afterSettle", (event) => {
      const panel = event.detail && event.detail.target;
      const form = panel && panel.id === "node-panel" && panel.querySelector("form.nf");
      if (!form) return;
      const type = form.querySelector('input[name="type"]');
      if (!type || type.value !== "map" || form.querySelector("[data-drill-open]")) return;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button small drill-open";
      button.dataset.drillOpen = form.dataset.node;
      button.dataset.testid = "drill-open";
      button.textContent = "Open inner flow on the canvas";
      button.addEventListener("click", () => this.open(form.dataset.node));
      const head = form.querySelector(".nf-desc") || form.querySelector(".nf-head");
      head.after(button);
    });
    // A run view's paint: a drilled-in run page follows the items as they go.
    document.addEventListener("switchyard:run-painted", () => this.paintRun());
  }

  get depth() {
    return this.stack.length;
  }

  /** The map item shown at the drawn level, on a run page. */
  get item() {
    const top = this.stack[this.stack.length - 1];
    return top ? top.item : 0;
  }

  set item(value) {
    const top = this.stack[this.stack.length - 1];
    if (top) top.item = value;
  }

  /** The levels above the drawn one as [[mapId, item]], for runs/items.js. */
  outer() {
    return this.stack.slice(0, -1).map((f) => [f.mapId, f.item]);
  }

  /** The drawn level's document, or the one it was read from when nothing changed. */
  levelDoc() {
    const level = this.host.levelJSON();
    const top = this.stack[this.stack.length - 1];
    if (top && JSON.stringify(level) === top.loadedText) return clone(top.original);
    return level;
  }

  /** The whole flow document: the drawn level written into each map above it. */
  compose() {
    if (!this.stack.length) return this.host.levelJSON();
    let doc = this.levelDoc();
    for (let i = this.stack.length - 1; i >= 0; i--) doc = withInner(this.stack[i].parent, this.stack[i].mapId, doc);
    doc.graph = { ...(doc.graph || {}), name: this.host.rootName(doc.graph && doc.graph.name) };
    return doc;
  }

  /** Draw the inner flow of the map `mapId` of the drawn level. */
  open(mapId) {
    const { graph, history } = this.host;
    const node = graph.getCellById(mapId);
    if (!node || !node.isNode()) return;
    const data = node.getData() || {};
    const flow = data.config && data.config.flow;
    if (data.type !== "map" || !flow || typeof flow !== "object") return;
    const inner = { ...clone(flow), nodes: Array.isArray(flow.nodes) ? clone(flow.nodes) : [] };
    if (!Array.isArray(inner.edges)) inner.edges = [];
    this.stack.push({
      mapId,
      label: data.label || mapId,
      parent: this.levelDoc(),
      original: clone(flow),
      view: this.host.view(),
      undo: history.undoStack.slice(),
      redo: history.redoStack.slice(),
      loadedText: "",
      item: 0, // the item shown on a run page
    });
    this.host.drawLevel(inner, {});
    this.stack[this.stack.length - 1].loadedText = JSON.stringify(this.host.levelJSON());
    // Drawn, the level reads as it was written: the document is as it was (not dirty).
    this.host.checkDirty();
    this.render();
    this.paintRun();
    document.dispatchEvent(new CustomEvent("switchyard:drill", { detail: { path: this.path() } }));
  }

  /** Back up to level `depth` (0: the flow itself). */
  close(depth) {
    if (depth >= this.stack.length || depth < 0) return;
    const { graph, history } = this.host;
    let doc = this.levelDoc();
    let frame = null;
    // Each level left is written into its map; the last one, `frame`, is drawn again.
    while (this.stack.length > depth) {
      frame = this.stack.pop();
      if (this.stack.length > depth) doc = withInner(frame.parent, frame.mapId, doc);
    }
    const changed = JSON.stringify(doc) !== JSON.stringify(frame.original);
    this.host.drawLevel(frame.parent, { view: frame.view });
    history.undoStack = frame.undo;
    history.redoStack = frame.redo;
    const node = graph.getCellById(frame.mapId);
    if (changed && node) {
      // One recorded change: undo here takes the whole visit to the inner flow back.
      const data = node.getData() || {};
      node.setData({ ...data, config: { ...(data.config || {}), flow: doc } }, { overwrite: true });
    }
    if (this.stack.length) this.stack[this.stack.length - 1].loadedText = JSON.stringify(this.host.levelJSON());
    this.host.checkDirty();
    this.render();
    if (this.stack.length) this.paintRun();
    else this.host.repaintRun();
    document.dispatchEvent(new CustomEvent("switchyard:drill", { detail: { path: this.path() } }));
  }

  /**
   * A change to node `nodeId` (of `type`) of the level at `path` (maps from the top, as
   * path() gives), wherever the canvas is now: a node form's answer that came back after
   * the canvas changed level (panel.js). `update(data)` gives the node's new
   * {config, label} from its {config, label}. The drawn level has another level's node
   * only inside one of its maps: that map's config changes as one undoable change. A level
   * above the drawn one is its frame's document, written back when going up (not undoable
   * from down here). False when there is no such node any more.
   */
  applyAt(path, nodeId, type, update) {
    const here = this.path();
    let k = 0;
    while (k < path.length && k < here.length && path[k] === here[k]) k++;
    const rest = path.slice(k);
    if (k === here.length) {
      if (!rest.length) return false; // the drawn level: the panel applies it itself
      const map = this.host.graph.getCellById(rest[0]);
      const data = map && map.isNode() ? map.getData() || {} : {};
      if (data.type !== "map" || !data.config || !data.config.flow) return false;
      const flow = clone(data.config.flow);
      if (!updateIn(flow, rest.slice(1), nodeId, type, update, false)) return false;
      map.setData({ ...data, config: { ...data.config, flow } }, { overwrite: true });
      return true;
    }
    // The map drilled into from level k keeps its flow: the levels below own it.
    const doc = this.stack[k].parent;
    const keepFlow = !rest.length && nodeId === this.stack[k].mapId;
    if (!updateIn(doc, rest, nodeId, type, update, keepFlow)) return false;
    this.host.checkDirty();
    return true;
  }

  /** Forget every level (a new document is drawn at the top). */
  reset() {
    this.stack = [];
    this.render();
  }

  path() {
    return this.stack.map((f) => f.mapId);
  }

  // ---- The breadcrumb -------------------------------------------------------------------
  render() {
    if (!this.stack.length) {
      if (this.bar) this.bar.hidden = true;
      return;
    }
    if (!this.bar) {
      this.bar = document.createElement("nav");
      this.bar.className = "drill-bar";
      this.bar.setAttribute("aria-label", "Inner flows");
      this.bar.dataset.testid = "drill-crumbs";
      const wrap = this.host.container.parentElement;
      wrap.appendChild(this.bar);
    }
    this.bar.hidden = false;
    // On a run page, each level above names the item it shows.
    const onRun = Boolean(this.runView());
    const crumbs = [
      this.host.rootName(""),
      ...this.stack.map((f, i) => (onRun && i < this.stack.length - 1 ? `${f.label} #${f.item}` : f.label)),
    ];
    const parts = [];
    crumbs.forEach((text, depth) => {
      if (depth) parts.push(el("span", "drill-sep", "›"));
      if (depth === crumbs.length - 1) {
        const here = el("span", "drill-here", text);
        here.setAttribute("aria-current", "page");
        parts.push(here);
      } else {
        const b = el("button", "link drill-up", text);
        b.type = "button";
        b.dataset.testid = `drill-up-${depth}`;
        b.title = depth ? `Back to the inner flow of ${text}` : "Back to the flow";
        b.addEventListener("click", () => this.close(depth));
        parts.push(b);
      }
    });
    const picker = this.itemPicker();
    if (picker) parts.push(picker);
    this.bar.replaceChildren(...parts);
  }

  // ---- A run page: one item of the map -------------------------------------------------
  runView() {
    const root = document.querySelector("[data-run-view][data-read-only]");
    return root && root.switchyardRunView;
  }

  /** The node_item events the run view has applied so far. */
  runEvents() {
    const view = this.runView();
    if (!view) return null;
    if (view.replay && view.replay.events && view.replay.events.length) {
      return view.replay.events.slice(0, view.replay.pos);
    }
    return view.itemEvents || [];
  }

  itemPicker() {
    const events = this.stack.length ? this.runEvents() : null;
    if (!events) return null;
    const mapId = this.stack[this.stack.length - 1].mapId;
    const indices = itemIndices(events, mapId, this.outer());
    const label = el("label", "drill-item", "Item ");
    const select = document.createElement("select");
    select.dataset.testid = "drill-item";
    select.dataset.depth = String(this.stack.length);
    for (const i of indices.length ? indices : [0]) {
      const option = document.createElement("option");
      option.value = String(i);
      option.textContent = `#${i}`;
      option.selected = i === this.item;
      select.appendChild(option);
    }
    select.addEventListener("change", () => {
      this.item = Number(select.value) || 0;
      this.paintRun();
    });
    label.appendChild(select);
    this.itemCount = indices.length;
    return label;
  }

  paintRun() {
    if (!this.stack.length) return;
    const events = this.runEvents();
    if (!events) return;
    const mapId = this.stack[this.stack.length - 1].mapId;
    const outer = this.outer();
    if (itemIndices(events, mapId, outer).length !== this.itemCount) this.render();
    const states = itemStates(events, mapId, this.item, outer);
    const done = states.filter(([, s]) => s.status === "done").map(([id]) => id);
    this.host.paintItems(states, done);
    if (this.bar) this.bar.dataset.item = String(this.item);
  }
}

/** `parent` (a document) with its map `mapId`'s inline flow replaced by `inner`. */
export function withInner(parent, mapId, inner) {
  const doc = clone(parent);
  for (const node of doc.nodes || []) {
    if (node.id === mapId) node.config = { ...(node.config || {}), flow: inner };
  }
  return doc;
}

/** Node `nodeId` of the flow inside `doc`'s maps `maps` (a path), changed in place. */
function updateIn(doc, maps, nodeId, type, update, keepFlow) {
  let level = doc;
  for (const mapId of maps) {
    const map = (level.nodes || []).find((n) => n.id === mapId && n.type === "map");
    level = map && map.config && map.config.flow;
    if (!level || typeof level !== "object") return false;
  }
  const node = (level.nodes || []).find((n) => n.id === nodeId);
  if (!node || node.type !== type) return false;
  const { config, label } = update({ config: node.config || {}, label: node.label || "" });
  node.config = keepFlow ? { ...config, flow: (node.config || {}).flow } : config;
  if (label) node.label = label;
  else delete node.label;
  return true;
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  e.className = className;
  e.textContent = text;
  return e;
}
