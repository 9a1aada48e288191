/* shapes.js — how a flow looks on the canvas: the geometry, the X6 node, edge and
   connector shapes, and the pure helpers that turn a node's ports and run state into
   drawing attributes. Only registerShapes() touches X6 (passed in), so
   Node can import the rest (shapes.test.js). */

import { curveBend, registerRouting, roundedPath } from "./routes.js";

// Geometry (px). Node width is fixed so nothing needs measuring.
export const W = 210;
export const HEAD = 34;
export const ROW = 22;
export const PAD = 10;
export const STREAM_LINES = 5;
export const LINE_H = 16;
export const STREAM_CHARS = 23; // monospace 13px (7.8 px a character) in W - 28px
export const STREAM_H = STREAM_LINES * LINE_H + 10;
// The widths (px) that text is fitted to without measuring it: the title (sans 14px, bold)
// and the type tag (monospace 13px) share the head; port labels (monospace 13px) a row.
const TITLE_CHAR = 8.2;
const KIND_CHAR = 7.8;
export const PORT_CHARS = 12;
// A problem under a node (sans 13px) ends within the node's width.
export const PROBLEM_CHARS = 28;
export const STATUSES = ["idle", "queued", "running", "waiting", "done", "skipped", "failed", "cancelled"];

// Run badges (cost, cached, reused) sit as small tags above the node's top-left corner.
export const TAG_SLOTS = 3;
const TAG_H = 15;
const TAG_CHAR = 6.1; // monospace 10px

/** The attrs of a node's tag slots for these badges ([{kind, text, title}]); empty slots hide. */
export function tagAttrs(badges) {
  const attrs = {};
  let x = 0;
  for (let i = 0; i < TAG_SLOTS; i++) {
    const badge = badges[i];
    const text = badge ? String(badge.text) : "";
    const width = badge ? Math.round(10 + text.length * TAG_CHAR) : 0;
    attrs[`tag${i}`] = {
      class: badge ? `sy-tag sy-tag-${badge.kind}` : "sy-tag is-empty",
      transform: `translate(${x},${-TAG_H - 3})`,
      title: badge ? badge.title || text : "",
    };
    attrs[`tag${i}Bg`] = { x: 0, y: 0, width, height: TAG_H, rx: 4 };
    attrs[`tag${i}Text`] = { x: 5, y: TAG_H / 2 + 0.5, textVerticalAnchor: "middle", text };
    if (badge) x += width + 4;
  }
  return attrs;
}

export const portKey = (type, config) => type + "\u0000" + JSON.stringify(config || {});
export const portName = (id) => String(id || "").replace(/^(in|out):/, "");
export const shortText = (text, max) => (text.length > max ? text.slice(0, max - 1) + "…" : text);

export function baseHeight(rows) {
  return HEAD + rows * ROW + PAD;
}

/** Node categories whose nodes stream text while they run: their nodes keep the stream's
    room from the start, so a run never resizes them into their neighbours. */
export const STREAMING = new Set(["model", "container"]);

/** A node's height: its rows, plus the stream's room when it streams or may. */
export function nodeHeight(rows, streams) {
  return baseHeight(rows) + (streams ? STREAM_H + 4 : 0);
}

/** The title as drawn: ellipsised to end before the type tag at the head's right. */
export function titleText(label, type) {
  const kind = String(type || "?").length * KIND_CHAR;
  const room = W - 10 - kind - 10 - 28;
  return shortText(String(label), Math.max(4, Math.floor(room / TITLE_CHAR)));
}

/** The ports of `nodeId` that edges (document edges) use: {ins, outs}, each once. */
export function connectedPorts(nodeId, edges) {
  const ins = [];
  const outs = [];
  for (const e of edges) {
    if (e.target === nodeId && !ins.includes(e.target_port)) ins.push(e.target_port);
    if (e.source === nodeId && !outs.includes(e.source_port)) outs.push(e.source_port);
  }
  return { ins, outs };
}

// What every port is drawn with. Kept in each port item (portItems) rather than in the
// shape's port groups: X6 deep-copies and merges a node's groups into every port of every
// node it makes, and the items already carry their own attrs.
const PORT_ATTRS = {
  in: { r: 5, magnet: "passive" },
  out: { r: 5, magnet: true },
};
export const PORT_LABEL_SIZE = 13;

/** An input port added by hand before the server's ports are drawn again (syncPorts). */
export const newInPort = (name) => ({ id: `in:${name}`, group: "in", attrs: { circle: { ...PORT_ATTRS.in } } });

/** The port items of a node: the server's ports, plus any port an edge still uses (shown
    as stale: validation will name it), plus "+" on nodes that take any port name (merge). */
export function portItems(server, connected) {
  const anyIn = server.inputs === null;
  const ins = (server.inputs || []).map((name) => ({ name }));
  for (const name of connected.ins) {
    if (name !== "+" && !ins.some((p) => p.name === name)) ins.push({ name, stale: !anyIn });
  }
  if (anyIn) ins.push({ name: "+", add: true });
  const outs = server.outputs.map((name) => ({ name }));
  for (const name of connected.outs) {
    if (!outs.some((p) => p.name === name)) outs.push({ name, stale: true });
  }
  const item = (group, p, i) => ({
    id: `${group}:${p.name}`,
    group,
    args: { x: group === "in" ? 0 : W, y: HEAD + i * ROW + ROW / 2 + 2 },
    attrs: {
      circle: { ...PORT_ATTRS[group], class: `sy-port sy-port-${group}${p.stale ? " is-stale" : ""}${p.add ? " is-add" : ""}` },
      text: {
        text: p.add ? "+ port" : shortText(p.name, PORT_CHARS),
        class: `sy-port-label${p.stale ? " is-stale" : ""}${p.add ? " is-add" : ""}`,
        fontSize: PORT_LABEL_SIZE,
      },
    },
  });
  return {
    items: [...ins.map((p, i) => item("in", p, i)), ...outs.map((p, i) => item("out", p, i))],
    rows: Math.max(ins.length, outs.length, 1),
  };
}

/** What a loop-back edge's settings (its document `initial` and `append`) are drawn as:
    "initial: …" for a first-pass value, "+=" for an edge that accumulates; "" for neither. */
export function edgeLabel(kept) {
  const settings = kept || {};
  const hasInitial = Object.prototype.hasOwnProperty.call(settings, "initial");
  const shown = hasInitial ? shortText(JSON.stringify(settings.initial), 24) : "";
  if (settings.append) {
    const from = hasInitial && !(Array.isArray(settings.initial) && settings.initial.length === 0);
    return from ? `+= (from ${shown})` : "+=";
  }
  return hasInitial ? `initial: ${shown}` : "";
}

/** The X6 labels of an edge with these settings: one, mid-way, or none. */
export function edgeLabels(kept) {
  const text = edgeLabel(kept);
  if (!text) return [];
  return [
    {
      position: 0.5,
      attrs: {
        label: { text, class: "sy-edge-label", fontSize: 13 },
        body: { class: "sy-edge-label-bg", ref: "label", refWidth: "140%", refHeight: "140%", refX: "-20%", refY: "-20%", rx: 4 },
      },
    },
  ];
}

/** One line of text word-wrapped at `width` characters: breaks after a space, and inside
    a word only when the word alone is longer than a line. Each space stays at the end of
    its line, so the lines joined are the text again (what copying or reading it gives). */
export function wrapLine(raw, width) {
  const lines = [];
  let line = "";
  for (const token of raw.split(/(?<= )/)) {
    if (line && (line + token).trimEnd().length > width) {
      lines.push(line);
      line = "";
    }
    let rest = token;
    while (rest.trimEnd().length > width) {
      lines.push(rest.slice(0, width));
      rest = rest.slice(width);
    }
    line += rest;
  }
  lines.push(line);
  return lines;
}

/** Streamed text as the node shows it: word-wrapped at STREAM_CHARS, the last STREAM_LINES
    lines (the node keeps its size; the text scrolls up inside it). */
export function streamLines(text) {
  const lines = [];
  for (const raw of String(text).split("\n")) {
    if (!raw) {
      lines.push("");
      continue;
    }
    lines.push(...wrapLine(raw, STREAM_CHARS));
  }
  while (lines.length && lines[lines.length - 1] === "") lines.pop();
  return lines.slice(-STREAM_LINES).join("\n") || " ";
}

/** The empty tag slots as drawn before any badge: tagAttrs([]) for the markup (renderNode
    sets every slot's attrs again once a node has badges). */
function emptyTagMarkup(i) {
  const attrs = tagAttrs([]);
  const plain = (selector) => {
    const out = {};
    for (const [key, value] of Object.entries(attrs[selector])) {
      if (!["text", "textVerticalAnchor", "title"].includes(key)) out[key] = value;
    }
    return out;
  };
  return {
    tagName: "g",
    selector: `tag${i}`,
    attrs: plain(`tag${i}`),
    children: [
      { tagName: "rect", selector: `tag${i}Bg`, attrs: plain(`tag${i}Bg`) },
      { tagName: "text", selector: `tag${i}Text`, attrs: plain(`tag${i}Text`) },
    ],
  };
}

/** Registers the "sy-node" and "sy-edge" shapes and the "sy-curve" connector with X6. */
export function registerShapes(X6) {
  registerRouting(X6);
  // Attributes that never change live in the markup (class-level, drawn as they are);
  // `attrs` keeps only what X6 computes (ref sizes, text and its anchors) or renderNode
  // changes. X6 deep-merges and deep-copies a node's default attrs and port groups into
  // each node it makes: with them in `attrs`, making the 300 nodes of a big flow cost
  // about twice as much.
  X6.Graph.registerNode(
    "sy-node",
    {
      width: W,
      height: HEAD + ROW + PAD,
      markup: [
        {
          tagName: "g",
          selector: "frame",
          attrs: { class: "sy-node" },
          children: [
            { tagName: "rect", selector: "body", attrs: { rx: 8, ry: 8, class: "sy-body" } },
            { tagName: "circle", selector: "dot", attrs: { cx: 15, cy: HEAD / 2, r: 4.5, class: "sy-dot" } },
            // A breakpoint's mark, left of the head (shown by the frame's has-breakpoint).
            { tagName: "circle", selector: "bp", attrs: { cx: -10, cy: HEAD / 2, r: 6, class: "sy-bp" } },
            { tagName: "text", selector: "title" },
            { tagName: "text", selector: "kind" },
            { tagName: "rect", selector: "barBg", attrs: { x: 0, y: HEAD - 1, width: W, height: 2, class: "sy-bar-bg" } },
            { tagName: "rect", selector: "bar", attrs: { x: 0, y: HEAD - 1, width: 0, height: 2, class: "sy-bar" } },
            {
              tagName: "rect",
              selector: "streamBg",
              attrs: { x: 8, y: 0, width: W - 16, height: STREAM_H, rx: 4, class: "sy-stream-bg" },
            },
            { tagName: "text", selector: "stream" },
            {
              tagName: "g",
              selector: "badge",
              attrs: { transform: `translate(${W - 4},0)`, class: "sy-badge" },
              children: [
                { tagName: "rect", selector: "badgeBg", attrs: { x: -16, y: -9, width: 32, height: 18, rx: 9 } },
                { tagName: "text", selector: "badgeText" },
              ],
            },
            { tagName: "text", selector: "problem" },
            ...[0, 1, 2].map(emptyTagMarkup),
          ],
        },
      ],
      attrs: {
        body: { refWidth: "100%", refHeight: "100%" },
        title: { x: 28, y: HEAD / 2, textVerticalAnchor: "middle", class: "sy-title", text: "" },
        kind: {
          x: W - 10, y: HEAD / 2, textAnchor: "end", textVerticalAnchor: "middle", class: "sy-kind", text: "",
        },
        stream: { x: 14, y: 0, class: "sy-stream", text: "", lineHeight: LINE_H, textVerticalAnchor: "top" },
        badgeText: { x: 0, y: 0, textAnchor: "middle", textVerticalAnchor: "middle", text: "" },
        problem: { x: 2, y: 0, class: "sy-problem-text", text: "" },
      },
      portMarkup: [{ tagName: "circle", selector: "circle" }],
      portLabelMarkup: { tagName: "text", selector: "text" },
      ports: {
        groups: {
          in: { position: "absolute", label: { position: { name: "right", args: { x: 10 } } } },
          out: { position: "absolute", label: { position: { name: "left", args: { x: -10 } } } },
        },
      },
    },
    true,
  );

  // Edges leave an output to the right and enter an input from the left, also when they
  // run backwards (a loop), as in most node editors. An edge the router ("sy-route",
  // routes.js) sends round nodes follows its lane, corners rounded.
  X6.Graph.registerConnector(
    "sy-curve",
    (s, t, route, options) => {
      let d;
      if (route && route.length) d = roundedPath(s, route, t);
      else {
        const bend = curveBend(s, t);
        d = `M ${s.x} ${s.y} C ${s.x + bend} ${s.y} ${t.x - bend} ${t.y} ${t.x} ${t.y}`;
      }
      return options && options.raw ? X6.Path.parse(d) : d;
    },
    true,
  );

  X6.Graph.registerEdge(
    "sy-edge",
    {
      inherit: "edge",
      zIndex: 1,
      attrs: {
        line: {
          stroke: "#9aa3b2",
          strokeWidth: 1.6,
          class: "sy-edge-line",
          targetMarker: { name: "block", width: 7, height: 6 },
        },
      },
      connector: { name: "sy-curve" },
      router: { name: "sy-route" },
    },
    true,
  );
}
