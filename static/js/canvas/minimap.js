/*
 * canvas/minimap.js — the overview in the canvas's corner: every node as a rectangle on a
 * <canvas> (cheap for thousands), and the visible area as a frame. Click or drag in it to
 * pan there. It folds away to a button ("Map"), so it never hides the nodes under it; it
 * opens by itself only when the flow does not fit in view, and remembers the user's choice.
 *
 * The map frames the union of the flow and the visible area, so the frame always lies
 * inside the map where the view really is (X6's own minimap framed the flow alone: a view
 * larger than the flow drew its frame outside the map).
 */

const KEY = "switchyard:minimap";
const PAD = 6;

/** The smallest rectangle holding every box: {x, y, width, height}; null for none. */
export function union(boxes) {
  const some = boxes.filter(Boolean);
  if (!some.length) return null;
  const x = Math.min(...some.map((b) => b.x));
  const y = Math.min(...some.map((b) => b.y));
  const right = Math.max(...some.map((b) => b.x + b.width));
  const bottom = Math.max(...some.map((b) => b.y + b.height));
  return { x, y, width: right - x, height: bottom - y };
}

/** How `world` (a rectangle in graph coordinates) sits in a map of `size`, centred with
    PAD px around: {scale, ox, oy}, a point p is drawn at (ox + p.x*scale, oy + p.y*scale). */
export function mapping(world, size) {
  const scale = Math.min((size.width - 2 * PAD) / Math.max(world.width, 1), (size.height - 2 * PAD) / Math.max(world.height, 1));
  const ox = (size.width - world.width * scale) / 2 - world.x * scale;
  const oy = (size.height - world.height * scale) / 2 - world.y * scale;
  return { scale, ox, oy };
}

export class Minimap {
  constructor(graph, element) {
    this.graph = graph;
    this.element = element;
    this.frame = 0;
    this.frozen = null; // the mapping kept while dragging, so the map holds still under the pointer
    element.replaceChildren();
    element.classList.add("is-ready");
    this.toggle = document.createElement("button");
    this.toggle.type = "button";
    this.toggle.className = "button small ed-minimap-toggle";
    this.toggle.dataset.testid = "minimap-toggle";
    this.toggle.setAttribute("aria-controls", "ed-minimap-body");
    this.body = document.createElement("div");
    this.body.className = "ed-minimap-body";
    this.body.id = "ed-minimap-body";
    this.body.dataset.testid = "minimap";
    this.body.title = "Click or drag to move the view";
    this.canvas = document.createElement("canvas");
    this.view = document.createElement("div");
    this.view.className = "ed-minimap-view";
    this.view.dataset.testid = "minimap-viewport";
    this.body.append(this.canvas, this.view);
    element.append(this.body, this.toggle);

    const stored = localStorage.getItem(KEY);
    this.setOpen(stored ? stored === "open" : !this.fits(), false);
    this.toggle.addEventListener("click", () => this.setOpen(!this.open, true));
    this.body.addEventListener("pointerdown", (e) => this.press(e));
    const redraw = () => this.schedule();
    for (const name of ["scale", "translate", "resize", "node:added", "node:removed", "node:change:position", "node:change:size", "model:reset"]) {
      graph.on(name, redraw);
    }
    this.draw();
  }

  /** Does the whole flow lie in the visible area? */
  fits() {
    const flow = union(this.graph.getNodes().map((n) => n.getBBox()));
    if (!flow) return true;
    const area = this.graph.getGraphArea();
    return flow.x >= area.x && flow.y >= area.y && flow.x + flow.width <= area.x + area.width && flow.y + flow.height <= area.y + area.height;
  }

  setOpen(open, remember) {
    this.open = open;
    this.body.hidden = !open;
    this.element.classList.toggle("is-open", open);
    this.toggle.textContent = open ? "Hide map" : "Map";
    this.toggle.setAttribute("aria-expanded", String(open));
    if (remember) localStorage.setItem(KEY, open ? "open" : "closed");
    if (open) this.draw();
  }

  schedule() {
    if (this.frame || !this.open) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  size() {
    return { width: this.body.clientWidth || 180, height: this.body.clientHeight || 112 };
  }

  current() {
    const nodes = this.graph.getNodes().map((n) => n.getBBox());
    const area = this.graph.getGraphArea();
    const view = { x: area.x, y: area.y, width: area.width, height: area.height };
    return { nodes, view, map: this.frozen || mapping(union([...nodes, view]), this.size()) };
  }

  draw() {
    if (!this.open) return;
    const { width, height } = this.size();
    const ratio = window.devicePixelRatio || 1;
    if (this.canvas.width !== Math.round(width * ratio)) this.canvas.width = Math.round(width * ratio);
    if (this.canvas.height !== Math.round(height * ratio)) this.canvas.height = Math.round(height * ratio);
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const { nodes, view, map } = this.current();
    ctx.fillStyle = getComputedStyle(this.body).getPropertyValue("--mini-node").trim() || "#c3cad6";
    for (const b of nodes) {
      ctx.fillRect(map.ox + b.x * map.scale, map.oy + b.y * map.scale, Math.max(b.width * map.scale, 1.5), Math.max(b.height * map.scale, 1.5));
    }
    const s = this.view.style;
    s.left = `${map.ox + view.x * map.scale}px`;
    s.top = `${map.oy + view.y * map.scale}px`;
    s.width = `${view.width * map.scale}px`;
    s.height = `${view.height * map.scale}px`;
  }

  /** Centres the main view on the graph point under (clientX, clientY) of the map. */
  panTo(clientX, clientY, map) {
    const box = this.body.getBoundingClientRect();
    const x = (clientX - box.left - map.ox) / map.scale;
    const y = (clientY - box.top - map.oy) / map.scale;
    const { sx, sy } = this.graph.scale();
    const container = this.graph.container;
    this.graph.translate(container.clientWidth / 2 - x * sx, container.clientHeight / 2 - y * sy);
  }

  press(e) {
    if (e.button !== 0) return;
    e.preventDefault();
    this.frozen = this.current().map;
    this.body.setPointerCapture(e.pointerId);
    this.panTo(e.clientX, e.clientY, this.frozen);
    const move = (m) => this.panTo(m.clientX, m.clientY, this.frozen);
    const up = () => {
      this.body.removeEventListener("pointermove", move);
      this.body.removeEventListener("pointerup", up);
      this.body.removeEventListener("pointercancel", up);
      this.frozen = null;
      this.draw();
    };
    this.body.addEventListener("pointermove", move);
    this.body.addEventListener("pointerup", up);
    this.body.addEventListener("pointercancel", up);
  }
}
