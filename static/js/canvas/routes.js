/* routes.js — where an edge runs. Most edges are the plain curve from an output to an
   input (shapes.js, "sy-curve"). Two kinds are routed instead, through a horizontal lane
   that no node sits on, with rounded corners:

   - an edge whose curve would pass through a third node: drawn under the nodes, it was
     hidden behind it and read as not being there (issue 14, item 7);
   - an edge that runs backwards (its input left of its output: a loop): the curve swept
     back across its own nodes and crossed the loop's other edges.

   The pure part (routeFor, roundedPath) takes boxes and points (routes.test.js); only
   attachRouting() and registerRouting() touch X6. */

// Clearance (px) between a lane and a node, and the stub out of a port before turning.
const GAP = 22;
const OUT = 24;
const SAMPLES = 24;

const inflate = (b, by) => ({ x: b.x - by, y: b.y - by, width: b.width + 2 * by, height: b.height + 2 * by });
const inside = (p, b) => p.x > b.x && p.x < b.x + b.width && p.y > b.y && p.y < b.y + b.height;

/** The bend of the plain curve from s to t: as shapes.js's "sy-curve" draws it. */
export function curveBend(s, t) {
  return Math.max(Math.abs(t.x - s.x) / 2, Math.min(Math.abs(t.y - s.y), 60), 40);
}

/** Points along the plain curve from s to t (its ends left out). */
export function curvePoints(s, t, n = SAMPLES) {
  const bend = curveBend(s, t);
  const c1 = { x: s.x + bend, y: s.y };
  const c2 = { x: t.x - bend, y: t.y };
  const points = [];
  for (let i = 1; i < n; i++) {
    const u = i / n;
    const a = (1 - u) ** 3, b = 3 * (1 - u) ** 2 * u, c = 3 * (1 - u) * u ** 2, d = u ** 3;
    points.push({ x: a * s.x + b * c1.x + c * c2.x + d * t.x, y: a * s.y + b * c1.y + c * c2.y + d * t.y });
  }
  return points;
}

/** Does the horizontal segment at y from x0 to x1 (or the vertical one at x) cross a box? */
function hitsH(y, x0, x1, boxes) {
  const lo = Math.min(x0, x1), hi = Math.max(x0, x1);
  return boxes.some((b) => y > b.y && y < b.y + b.height && hi > b.x && lo < b.x + b.width);
}
function hitsV(x, y0, y1, boxes) {
  const lo = Math.min(y0, y1), hi = Math.max(y0, y1);
  return boxes.some((b) => x > b.x && x < b.x + b.width && hi > b.y && lo < b.y + b.height);
}

/**
 * The route of an edge from port point s to port point t: [] for the plain curve, else
 * the corner points of a path out of s to the right, along a free lane, and into t from
 * the left. `others`: the boxes of the nodes other than the edge's own; `ends`: the boxes
 * of its source and target nodes (a backward edge goes round them).
 */
export function routeFor(s, t, others, ends) {
  const backward = t.x < s.x;
  if (!backward) {
    // A forward curve stays within the rectangle of its ends: most edges of a big flow
    // have no node there and are done here, without sampling the curve.
    const top = Math.min(s.y, t.y), bottom = Math.max(s.y, t.y);
    others = others.filter((b) => b.x < t.x + 4 && b.x + b.width > s.x - 4 && b.y < bottom + 4 && b.y + b.height > top - 4);
    if (!others.length) return [];
  }
  const clear = others.map((b) => inflate(b, 4));
  if (!backward && !curvePoints(s, t).some((p) => clear.some((b) => inside(p, b)))) return [];
  const x0 = s.x + OUT;
  const x1 = t.x - OUT;
  const lo = Math.min(x0, x1), hi = Math.max(x0, x1);
  // The boxes in the lane's way, kept GAP/2 clear; a backward edge also avoids its own two.
  const blocking = (backward ? [...others, ...ends] : others)
    .filter((b) => b.x < hi + GAP && b.x + b.width > lo - GAP)
    .map((b) => inflate(b, GAP / 2));
  const candidates = new Set([s.y, t.y]);
  for (const b of blocking) {
    candidates.add(b.y - GAP / 2);
    candidates.add(b.y + b.height + GAP / 2);
  }
  const cost = (y) => Math.abs(y - s.y) + Math.abs(y - t.y);
  // A loop runs back under its own nodes, as loops are drawn: a lane between them would
  // cross the wires going forward.
  const floor = backward ? Math.max(...ends.map((b) => b.y + b.height)) + GAP : -Infinity;
  let best = null;
  for (const y of candidates) {
    if (y < floor || hitsH(y, lo, hi, blocking)) continue;
    // A stub that runs through a node costs more than a longer way round.
    const stubs = [hitsV(x0, s.y, y, clear), hitsV(x1, y, t.y, clear)].filter(Boolean).length;
    const score = stubs * 100000 + cost(y);
    if (!best || score < best.score) best = { y, score };
  }
  const lane = best ? best.y : Math.max(...blocking.map((b) => b.y + b.height), s.y, t.y) + GAP;
  return [
    { x: x0, y: s.y },
    { x: x0, y: lane },
    { x: x1, y: lane },
    { x: x1, y: t.y },
  ];
}

/** An SVG path from s through the corner points to t, corners rounded (radius r). */
export function roundedPath(s, route, t, r = 10) {
  const points = [s, ...route, t].filter(
    (p, i, all) => i === 0 || Math.abs(p.x - all[i - 1].x) > 0.5 || Math.abs(p.y - all[i - 1].y) > 0.5,
  );
  let d = `M ${points[0].x} ${points[0].y}`;
  for (let i = 1; i < points.length - 1; i++) {
    const [a, p, b] = [points[i - 1], points[i], points[i + 1]];
    const lenIn = Math.hypot(p.x - a.x, p.y - a.y);
    const lenOut = Math.hypot(b.x - p.x, b.y - p.y);
    const k = Math.min(r, lenIn / 2, lenOut / 2);
    const from = { x: p.x - ((p.x - a.x) / lenIn) * k, y: p.y - ((p.y - a.y) / lenIn) * k };
    const to = { x: p.x + ((b.x - p.x) / lenOut) * k, y: p.y + ((b.y - p.y) / lenOut) * k };
    d += ` L ${from.x} ${from.y} Q ${p.x} ${p.y} ${to.x} ${to.y}`;
  }
  const last = points[points.length - 1];
  return `${d} L ${last.x} ${last.y}`;
}

// The boxes of a graph's flow nodes, kept until a node is added, removed, moved or resized:
// every edge routes against the same list instead of asking each node for its box again.
const boxCache = new WeakMap();

function boxesOf(graph) {
  let boxes = boxCache.get(graph);
  if (!boxes) {
    boxes = new Map();
    for (const node of graph.getNodes()) {
      if (node.shape === "sy-node") boxes.set(node.id, node.getBBox());
    }
    boxCache.set(graph, boxes);
  }
  return boxes;
}

/** Registers the "sy-route" router with X6: routeFor() over the edge's graph. */
export function registerRouting(X6) {
  X6.Graph.registerRouter(
    "sy-route",
    function route(vertices, options, view) {
      const edge = view.cell;
      const source = edge.getSourceCell();
      const target = edge.getTargetCell();
      const s = view.sourceAnchor;
      const t = view.targetAnchor;
      if (!source || !target || !s || !t || !view.graph) return vertices;
      const boxes = boxesOf(view.graph);
      // Only nodes within the edge's columns can be in its way.
      const lo = Math.min(s.x, t.x) - 60, hi = Math.max(s.x, t.x) + 60;
      const others = [];
      for (const [id, box] of boxes) {
        if (id !== source.id && id !== target.id && box.x < hi && box.x + box.width > lo) others.push(box);
      }
      const ends = [source.getBBox(), target.getBBox()];
      return routeFor({ x: s.x, y: s.y }, { x: t.x, y: t.y }, others, ends);
    },
    true,
  );
}

/** Keeps routes right as the nodes change: an edge routed round a node that moves (or a
    node dropped on its path) is routed again once the change settles. Drawing a document
    (options.derived) needs none: its edges are routed as they are first drawn. */
export function attachRouting(graph) {
  let timer = 0;
  const changed = (args) => {
    boxCache.delete(graph);
    if (args && args.options && args.options.derived) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      for (const edge of graph.getEdges()) {
        const view = graph.findViewByCell(edge);
        if (view && typeof view.update === "function") view.update();
      }
    }, 120);
  };
  for (const name of ["node:added", "node:removed", "node:change:position"]) {
    graph.on(name, changed);
  }
  // A node's size follows its ports (and a run's state): its own edges follow it, and
  // the others keep their lanes until a node moves.
  graph.on("node:change:size", () => boxCache.delete(graph));
}
