/* document.js — the flow document (README, "The flow document") and the X6 cells drawn
   from it, both ways; and where to put new nodes and the view. Functions of an X6 graph
   take it as their first argument; the rest are pure (document.test.js). */
import { annotationsOf, isAnnotation } from "./notes.js";
import { displayName } from "./keys.js";
import {
  STREAMING, W, baseHeight, connectedPorts, edgeLabels, nodeHeight, portItems, portName, titleText,
} from "./shapes.js";

/** An X6 edge as a document edge, or null while one of its ends is loose. */
export function edgeDoc(edge) {
  const source = edge.getSourceCellId();
  const target = edge.getTargetCellId();
  const sourcePort = edge.getSourcePortId();
  const targetPort = edge.getTargetPortId();
  if (!source || !target || !sourcePort || !targetPort) return null;
  const kept = (edge.getData() || {}).kept || {};
  return { ...kept, source, target, source_port: portName(sourcePort), target_port: portName(targetPort) };
}

// What an edge is drawn from; the rest of a document edge (a loop-back edge's `initial`
// and `append`) is kept on the X6 edge and written back untouched.
const EDGE_ENDS = new Set(["source", "target", "source_port", "target_port", "key"]);

/** The graph as a flow document, with these graph attributes and name. */
export function graphDocument(graph, graphAttrs, name) {
  const all = graph.getNodes();
  const nodes = all.filter((node) => !isAnnotation(node)).map((node) => {
    const data = node.getData() || {};
    const at = node.getPosition();
    const item = {
      id: node.id,
      type: data.type,
      config: data.config || {},
      position: { x: Math.round(at.x), y: Math.round(at.y) },
    };
    if (data.label) item.label = data.label;
    return item;
  });
  const edges = graph.getEdges().map(edgeDoc).filter(Boolean);
  const doc = { directed: true, multigraph: true, graph: { ...graphAttrs, name }, nodes, edges };
  // Notes and groups (notes.js) only when there are some: a flow without keeps its shape.
  const { notes, groups } = annotationsOf(all);
  if (notes.length) doc.notes = notes;
  if (groups.length) doc.groups = groups;
  return doc;
}

/** The X6 node for a document node, given its ports from the server and the document's edges. */
export function nodeMeta(doc, edges, server, category = "") {
  const type = doc.type;
  const config = doc.config || {};
  const { items, rows } = portItems(server, connectedPorts(doc.id, edges));
  const at = doc.position || { x: 0, y: 0 };
  return {
    id: doc.id,
    shape: "sy-node",
    x: at.x,
    y: at.y,
    width: W,
    height: nodeHeight(rows, STREAMING.has(category)),
    zIndex: 2,
    data: { type, config, label: doc.label || "", rows },
    ports: { items },
    attrs: {
      frame: { class: `sy-node t-${type} st-idle`, "data-category": category },
      title: { text: titleText(displayName(doc), type) },
      kind: { text: type || "?" },
      stream: { y: baseHeight(rows) + 1 },
      streamBg: { y: baseHeight(rows) - 4 },
      problem: { y: nodeHeight(rows, STREAMING.has(category)) + 14 },
    },
  };
}

/** The X6 edge for a document edge. */
export function edgeMeta(e) {
  const meta = {
    shape: "sy-edge",
    source: { cell: e.source, port: `out:${e.source_port}` },
    target: { cell: e.target, port: `in:${e.target_port}` },
  };
  const kept = Object.fromEntries(Object.entries(e).filter(([k]) => !EDGE_ENDS.has(k)));
  if (Object.keys(kept).length) {
    meta.data = { kept };
    // A loop-back edge shows what it holds first ("initial: …") or that it accumulates ("+=").
    const labels = edgeLabels(kept);
    if (labels.length) meta.labels = labels;
  }
  return meta;
}

/** The edge a problem names: networkx numbers parallel edges 0, 1, … per (source, target)
    in document order. */
export function findEdge(graph, where) {
  const [source, target, key] = where;
  const between = graph.getEdges().filter((e) => e.getSourceCellId() === source && e.getTargetCellId() === target);
  return between[Number(key)] || between[0] || null;
}

/** A fresh node id for a type: its stem and the next number after those taken ("llm3"). */
export function nextId(type, ids) {
  const stem = String(type).replace(/[^A-Za-z0-9_]/g, "") || "node";
  const re = new RegExp(`^${stem}(\\d+)$`);
  let max = 0;
  for (const id of ids) {
    const m = re.exec(id);
    if (m) max = Math.max(max, Number(m[1]));
  }
  return `${stem}${max + 1}`;
}

/** `wanted`, or wanted_2, wanted_3, … whichever is not in `used`. */
export function uniqueName(wanted, used) {
  let name = wanted;
  for (let i = 2; used.has(name); i++) name = `${wanted}_${i}`;
  return name;
}

// The zoom under which text is no longer readable: framing a big flow stops there.
// Text is drawn at 13-14 px: at 0.85 the smallest is 11 px on screen.
const READABLE = 0.85;

/**
 * The zoom and pan framing these boxes in an area: all of them when they fit at a
 * readable zoom (or with {all: true} however small), else their start (left, top) at that
 * zoom. Returns {scale, tx, ty}; no boxes: the origin at 1:1, 40 px in.
 */
export function framing(boxes, area, options) {
  if (!boxes.length) return { scale: 1, tx: 40, ty: 40 };
  const x = Math.min(...boxes.map((b) => b.x));
  const y = Math.min(...boxes.map((b) => b.y));
  const right = Math.max(...boxes.map((b) => b.x + b.width));
  const bottom = Math.max(...boxes.map((b) => b.y + b.height));
  const rect = { width: right - x, height: bottom - y };
  const pad = 48;
  let scale = Math.min(1, (area.width - 2 * pad) / rect.width, (area.height - 2 * pad) / rect.height);
  if (!(options && options.all)) scale = Math.max(scale, READABLE);
  scale = Math.max(scale, 0.05);
  const fitsX = rect.width * scale <= area.width - 2 * pad;
  const fitsY = rect.height * scale <= area.height - 2 * pad;
  const tx = fitsX ? (area.width - rect.width * scale) / 2 - x * scale : pad - x * scale;
  const ty = fitsY ? (area.height - rect.height * scale) / 2 - y * scale : pad - y * scale;
  return { scale, tx, ty };
}
