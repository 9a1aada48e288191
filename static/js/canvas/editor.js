/*
 * canvas.js — the flow editor's canvas: AntV X6 3.1.8 (static/vendor/x6.min.js, global X6).
 *
 * The server renders every form, list and panel (the node form comes from
 * /flows/<id>/node-form/ through htmx); this file draws the graph, places that HTML, and
 * speaks JSON to /api/flows/<id> (save) and /api/editor/{ports,layout}. Ports always come
 * from the server, computed by the engine's node types; nothing here knows a node type.
 *
 * window.Switchyard.canvas — the interface other scripts (live.js, the run view) use:
 *
 *   graph                      the X6 Graph
 *   ready                      a Promise, resolved once the flow is drawn
 *   documentJSON()             the current flow document (see README, "The flow document")
 *   load(doc, {readOnly})      draw another document (history, run state and problems cleared;
 *                              it becomes the "saved" state the dirty flag compares against)
 *   load(doc, {version, keepView})   the saved version `version` becomes the base saves
 *                              name (a teammate's save, loaded in place: collab.js); the local
 *                              draft of the old base is dropped; keepView keeps zoom and pan
 *   setReadOnly(bool)          no moving, connecting, deleting or editing while true
 *   isReadOnly()
 *   setStatus(nodeId, status)  idle | queued | running | done | skipped | failed | cancelled
 *   appendText(nodeId, text)   streamed text, shown inside the node: the last 6 lines
 *   setText(nodeId, text)
 *   setProgress(nodeId, done, total)   a bar under the node's title
 *   setIteration(nodeId, n)    a badge "×n" when n > 1
 *   setNodeBadges(nodeId, [{kind, text, title}])   small tags above the node (kind: cost |
 *                              cached | reused; title is the hover text); [] removes them
 *   paintRunState(states, carried)   the whole run state in one pass, as after a seek:
 *                              states = [[nodeId, {status, text, done, total, iteration,
 *                              badges}]], carried = [[sourceNodeId, sourcePort]]; every
 *                              other node goes back to idle; only nodes whose state changed
 *                              are redrawn
 *   markEdges(sourceNodeId, sourcePort)  the edges that carried a value get highlighted
 *   markNode(nodeId, kind)     a version diff's mark: added | changed | removed | null
 *   resetRunState()            everything above back to idle and empty
 *   showProblems([{node, message, edge?}]) / clearProblems()   red outline + message + list
 *   isDirty()                  unsaved changes?
 *   pendingSave()              the save in flight (a Promise), or null
 *   save()                     Promise resolving to the saved version number, or rejecting
 *                              with an Error whose .status is 400 / 409 / 0 (network) …
 *   onNodeClick(callback)      callback(nodeId, event) on every click on a node
 *   focusNode(nodeId)          select it and bring it into view
 *   autoLayout(), undo(), redo()   what the toolbar buttons do
 *   version                    the version the editor is based on (the last loaded or saved)
 *   readyAt                    performance.now() when the flow was first drawn
 *
 * Run-state calls never change the document, the undo history or the dirty flag. Big flows
 * render only what is in view (X6 virtual rendering); the model always has every node.
 * Unsaved work is kept in localStorage under "switchyard:draft:<flowId>:<baseVersion>".
 * Events on document: "switchyard:saved" {detail: {version}}, "switchyard:dirty" {detail: {dirty}},
 * "switchyard:conflict" {detail: {version}} (a save refused with 409: `version` is the newest),
 * "switchyard:canvas-ready".
 */
(function () {
  "use strict";

  performance.mark("switchyard:canvas-start");
  const X6 = window.X6;
  const dataElement = document.getElementById("editor-data");
  if (!X6 || !dataElement) return;
  const DATA = JSON.parse(dataElement.textContent);
  const $ = (selector, root) => (root || document).querySelector(selector);
  const csrf = () => ($('meta[name="csrf-token"]') || {}).content || "";

  // ---- Geometry (px). Node width is fixed so nothing needs measuring. --------------------
  const W = 210;
  const HEAD = 34;
  const ROW = 22;
  const PAD = 10;
  const STREAM_LINES = 6;
  const LINE_H = 13;
  const STREAM_CHARS = 30; // monospace 10.5px in W - 28px
  const STREAM_H = STREAM_LINES * LINE_H + 10;
  const STATUSES = ["idle", "queued", "running", "done", "skipped", "failed", "cancelled"];
  // Options marking changes that are not edits of the flow (ports, sizes, run state, styles):
  // history skips them and they never make the flow dirty. (X6 itself uses `ui` for user gestures.)
  const UI = { derived: true };

  // Run badges (cost, cached, reused) sit as small tags above the node's top-left corner.
  const TAG_SLOTS = 3;
  const TAG_H = 15;
  const TAG_CHAR = 6.1; // monospace 10px
  function tagAttrs(badges) {
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

  // ---- Shapes ----------------------------------------------------------------------------
  const portLabel = { tagName: "text", selector: "text" };
  X6.Graph.registerNode(
    "sy-node",
    {
      width: W,
      height: HEAD + ROW + PAD,
      markup: [
        {
          tagName: "g",
          selector: "frame",
          children: [
            { tagName: "rect", selector: "body" },
            { tagName: "circle", selector: "dot" },
            { tagName: "text", selector: "title" },
            { tagName: "text", selector: "kind" },
            { tagName: "rect", selector: "barBg" },
            { tagName: "rect", selector: "bar" },
            { tagName: "rect", selector: "streamBg" },
            { tagName: "text", selector: "stream" },
            {
              tagName: "g",
              selector: "badge",
              children: [
                { tagName: "rect", selector: "badgeBg" },
                { tagName: "text", selector: "badgeText" },
              ],
            },
            { tagName: "text", selector: "problem" },
            ...[0, 1, 2].map((i) => ({
              tagName: "g",
              selector: `tag${i}`,
              children: [
                { tagName: "rect", selector: `tag${i}Bg` },
                { tagName: "text", selector: `tag${i}Text` },
              ],
            })),
          ],
        },
      ],
      attrs: {
        frame: { class: "sy-node" },
        body: { refWidth: "100%", refHeight: "100%", rx: 8, ry: 8, class: "sy-body" },
        dot: { cx: 15, cy: HEAD / 2, r: 4.5, class: "sy-dot" },
        title: { x: 28, y: HEAD / 2, textVerticalAnchor: "middle", class: "sy-title", text: "" },
        kind: {
          x: W - 10, y: HEAD / 2, textAnchor: "end", textVerticalAnchor: "middle", class: "sy-kind", text: "",
        },
        barBg: { x: 0, y: HEAD - 1, width: W, height: 2, class: "sy-bar-bg" },
        bar: { x: 0, y: HEAD - 1, width: 0, height: 2, class: "sy-bar" },
        streamBg: { x: 8, y: 0, width: W - 16, height: STREAM_H, rx: 4, class: "sy-stream-bg" },
        stream: { x: 14, y: 0, class: "sy-stream", text: "", lineHeight: LINE_H, textVerticalAnchor: "top" },
        badge: { transform: `translate(${W - 4},0)`, class: "sy-badge" },
        badgeBg: { x: -16, y: -9, width: 32, height: 18, rx: 9 },
        badgeText: { x: 0, y: 0, textAnchor: "middle", textVerticalAnchor: "middle", text: "" },
        problem: { x: 2, y: 0, class: "sy-problem-text", text: "" },
        ...tagAttrs([]),
      },
      ports: {
        groups: {
          in: {
            position: "absolute",
            markup: [{ tagName: "circle", selector: "circle" }],
            label: { position: { name: "right", args: { x: 10 } }, markup: portLabel },
            attrs: {
              circle: { r: 5, magnet: "passive", class: "sy-port sy-port-in" },
              text: { class: "sy-port-label", fontSize: 11 },
            },
          },
          out: {
            position: "absolute",
            markup: [{ tagName: "circle", selector: "circle" }],
            label: { position: { name: "left", args: { x: -10 } }, markup: portLabel },
            attrs: {
              circle: { r: 5, magnet: true, class: "sy-port sy-port-out" },
              text: { class: "sy-port-label", fontSize: 11 },
            },
          },
        },
      },
    },
    true,
  );

  // Edges leave an output to the right and enter an input from the left, also when they
  // run backwards (a loop), as in most node editors.
  X6.Graph.registerConnector(
    "sy-curve",
    (s, t, route, options) => {
      const bend = Math.max(Math.abs(t.x - s.x) / 2, Math.min(Math.abs(t.y - s.y), 60), 40);
      const d = `M ${s.x} ${s.y} C ${s.x + bend} ${s.y} ${t.x - bend} ${t.y} ${t.x} ${t.y}`;
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
    },
    true,
  );

  // The minimap draws plain rectangles: cheap enough for thousands of nodes.
  class MiniNodeView extends X6.NodeView {
    renderMarkup() {
      return this.renderJSONMarkup({ tagName: "rect", selector: "body" });
    }
    update() {
      super.update({ body: { refWidth: "100%", refHeight: "100%", rx: 6, class: "sy-mini-node" } });
    }
    renderPorts() {}
  }

  // ---- State -----------------------------------------------------------------------------
  let readOnly = !DATA.editable;
  let version = DATA.version;
  let graphAttrs = {};
  let savedText = "";
  let dirty = false;
  let saving = null;
  const portCache = new Map(); // type + config JSON -> {inputs, outputs}
  const lastPorts = new Map(); // node id -> the ports last drawn from the server
  const portRequests = new Map(); // node id -> sequence number of the latest request
  const runState = new Map(); // node id -> {status, text, done, total, iteration, badges}
  const tall = new Set(); // nodes that have shown streamed text since the run state was reset
  const stale = new Set(); // nodes whose run state is newer than their drawing (out of view)
  const problems = new Map(); // node id -> message
  const diffMarks = new Map(); // node id -> added | changed | removed (a version diff)
  const clickCallbacks = [];
  let clipboard = null;
  let pasteCount = 0;
  let panelNode = null;
  let pendingDrop = null;
  let loading = false; // while load() builds the graph, cell events need no handling

  const container = document.getElementById("ed-canvas");
  const nameInput = $('[data-testid="flow-name"]');
  const versionLabel = $('[data-testid="version"]');
  const dirtyFlag = $('[data-testid="dirty"]');
  const saveButton = $('[data-testid="save"]');
  const messageInput = $('[data-testid="save-message"]');
  const panel = document.getElementById("node-panel");
  const panelPlaceholder = panel ? panel.innerHTML : "";
  const problemsBox = $('[data-testid="problems"]');
  const banners = document.getElementById("ed-banners");

  const graph = new X6.Graph({
    container,
    // Only cells in (or near) the visible area are drawn: big flows open fast.
    virtual: { enabled: true, margin: 160 },
    autoResize: true,
    grid: { size: 10, visible: true, type: "dot", args: { color: "#d5dae2", thickness: 1 } },
    background: { color: "transparent" },
    panning: { enabled: true, eventTypes: ["leftMouseDown"] },
    mousewheel: { enabled: true, factor: 1.1, minScale: 0.15, maxScale: 2, zoomAtMousePosition: true },
    scaling: { min: 0.15, max: 2 },
    interacting: () =>
      readOnly
        ? { nodeMovable: false, edgeMovable: false, magnetConnectable: false, arrowheadMovable: false, vertexMovable: false, vertexAddable: false, vertexDeletable: false }
        : { nodeMovable: true, edgeMovable: false, magnetConnectable: true, arrowheadMovable: true, vertexMovable: false, vertexAddable: false, vertexDeletable: false },
    connecting: {
      snap: { radius: 24 },
      allowBlank: false,
      allowLoop: true,
      allowNode: false,
      allowEdge: false,
      allowPort: true,
      allowMulti: true,
      highlight: true,
      anchor: "center",
      connectionPoint: "anchor",
      connector: { name: "sy-curve" },
      createEdge() {
        return this.createEdge({ shape: "sy-edge" });
      },
      validateMagnet({ magnet }) {
        return !readOnly && String(magnet.getAttribute("port") || "").startsWith("out:");
      },
      validateConnection(args) {
        return connectionAllowed(args);
      },
    },
    highlighting: {
      magnetAvailable: { name: "className", args: { className: "sy-available" } },
      magnetAdsorbed: { name: "className", args: { className: "sy-adsorbed" } },
    },
  });

  const selection = new X6.Selection({
      enabled: true,
      multiple: true,
      rubberband: true,
      modifiers: "shift",
      multipleSelectionModifiers: ["shift", "ctrl", "meta"],
      movable: true,
      showNodeSelectionBox: false,
      showEdgeSelectionBox: false,
      pointerEvents: "none",
  });
  graph.use(selection);
  graph.use(new X6.Snapline({ enabled: true, sharp: true }));
  const history = new X6.History({
    enabled: true,
    stackSize: 200,
    beforeAddCommand(event, args) {
      return !(args && args.options && args.options.derived);
    },
  });
  graph.use(history);
  const dnd = new X6.Dnd({
    target: graph,
    scaled: false,
    getDragNode: (node) => node.clone({ keepId: true }),
    getDropNode: (node) => node.clone({ keepId: true }),
    validateNode: (node) => {
      if (readOnly) return false;
      pendingDrop = node.id;
      return true;
    },
  });

  // The minimap is a second graph of plain rectangles, built once the flow is drawn so that
  // it never delays opening the editor.
  function addMinimap() {
    const element = document.getElementById("ed-minimap");
    if (!element) return;
    graph.use(
      new X6.MiniMap({
        container: element,
        width: 180,
        height: 112,
        padding: 8,
        graphOptions: {
          async: true,
          createCellView(cell) {
            if (cell.isEdge()) return null;
            return MiniNodeView;
          },
        },
      }),
    );
  }

  // ---- Ports -----------------------------------------------------------------------------
  const portKey = (type, config) => type + "\u0000" + JSON.stringify(config || {});
  const portName = (id) => String(id || "").replace(/^(in|out):/, "");
  const shortText = (text, max) => (text.length > max ? text.slice(0, max - 1) + "…" : text);

  function connectedPorts(nodeId, edges) {
    const ins = [];
    const outs = [];
    for (const e of edges) {
      if (e.target === nodeId && !ins.includes(e.target_port)) ins.push(e.target_port);
      if (e.source === nodeId && !outs.includes(e.source_port)) outs.push(e.source_port);
    }
    return { ins, outs };
  }

  function edgeList(nodeId) {
    const node = graph.getCellById(nodeId);
    if (!node) return [];
    return graph.getConnectedEdges(node).map(edgeDoc).filter(Boolean);
  }

  // The port items of a node: the server's ports, plus any port an edge still uses (shown
  // as stale: validation will name it), plus "+" on nodes that take any port name (merge).
  function portItems(server, connected) {
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
        circle: { class: `sy-port sy-port-${group}${p.stale ? " is-stale" : ""}${p.add ? " is-add" : ""}` },
        text: {
          text: p.add ? "+ port" : shortText(p.name, 13),
          class: `sy-port-label${p.stale ? " is-stale" : ""}${p.add ? " is-add" : ""}`,
        },
      },
    });
    return {
      items: [...ins.map((p, i) => item("in", p, i)), ...outs.map((p, i) => item("out", p, i))],
      rows: Math.max(ins.length, outs.length, 1),
    };
  }

  function baseHeight(rows) {
    return HEAD + rows * ROW + PAD;
  }

  function serverPorts(nodeId, type, config) {
    return portCache.get(portKey(type, config)) || lastPorts.get(nodeId) || { inputs: [], outputs: [] };
  }

  function syncPorts(node) {
    const data = node.getData() || {};
    const server = serverPorts(node.id, data.type, data.config);
    lastPorts.set(node.id, server);
    const { items, rows } = portItems(server, connectedPorts(node.id, edgeList(node.id)));
    const current = node.getPorts();
    if (JSON.stringify(current) !== JSON.stringify(items)) {
      node.setPropByPath("ports/items", items, { rewrite: true, derived: true });
    }
    node.setData({ rows }, { derived: true, silent: true });
    renderNode(node);
  }

  function requestPorts(node) {
    const data = node.getData() || {};
    const key = portKey(data.type, data.config);
    if (portCache.has(key)) {
      syncPorts(node);
      return;
    }
    const seq = (portRequests.get(node.id) || 0) + 1;
    portRequests.set(node.id, seq);
    api("POST", DATA.urls.ports, { type: data.type, config: data.config || {} }).then(({ status, body }) => {
      if (status !== 200 || portRequests.get(node.id) !== seq) return;
      if (body.known) portCache.set(key, { inputs: body.inputs, outputs: body.outputs });
      const live = graph.getCellById(node.id);
      if (live) syncPorts(live);
    });
  }

  function connectionAllowed({ edge, sourceCell, targetCell, sourcePort, targetPort }) {
    if (readOnly || !sourceCell || !targetCell || !sourcePort || !targetPort) return false;
    if (!String(sourcePort).startsWith("out:") || !String(targetPort).startsWith("in:")) return false;
    if ((targetCell.getData() || {}).type === "input") return false;
    return !graph.getEdges().some(
      (e) =>
        e !== edge &&
        e.getSourceCellId() === sourceCell.id &&
        e.getSourcePortId() === sourcePort &&
        e.getTargetCellId() === targetCell.id &&
        e.getTargetPortId() === targetPort,
    );
  }

  // ---- Node rendering (derived from data + run state; never recorded) --------------------
  // quiet: for run-state changes, which never move ports. X6 updates every edge of a node
  // whose attrs change (a 200-node replay seek: thousands of edge re-routes); instead the
  // model takes the attrs silently and a drawn view redraws only them.
  function renderNode(node, quiet) {
    const data = node.getData() || {};
    const run = runState.get(node.id) || {};
    const rows = data.rows || 1;
    const problem = problems.get(node.id);
    const hasStream = Boolean(run.text);
    if (hasStream) tall.add(node.id);
    const base = baseHeight(rows);
    // A node keeps its stream's room once it has streamed: seeking back and forth in a
    // replay then never resizes nodes (and re-routes their edges) again.
    const height = hasStream || tall.has(node.id) ? base + STREAM_H + 4 : base;
    const classes = [
      "sy-node",
      `t-${data.type}`,
      `st-${run.status || "idle"}`,
      problem ? "has-problem" : "",
      diffMarks.has(node.id) ? `diff-${diffMarks.get(node.id)}` : "",
      hasStream ? "has-stream" : "",
      run.total ? "has-progress" : "",
      run.iteration > 1 ? "has-iteration" : "",
      selection.isSelected(node) ? "is-selected" : "",
    ].filter(Boolean);
    const progress = run.total ? Math.max(0, Math.min(1, run.done / run.total)) : 0;
    const attrs = {
      frame: { class: classes.join(" ") },
      title: { text: shortText(data.label || node.id, 22) },
      kind: { text: data.type || "?" },
      bar: { width: run.total ? Math.round(W * progress) : 40 },
      streamBg: { y: base - 4 },
      stream: { y: base + 1, text: hasStream ? streamLines(run.text) : "" },
      badgeText: { text: run.iteration > 1 ? `×${run.iteration}` : "" },
      problem: { y: height + 14, text: problem ? shortText(problem, 44) : "" },
      ...tagAttrs(run.badges || []),
    };
    const size = node.getSize();
    const resized = size.height !== height || size.width !== W;
    if (quiet) {
      // Ports sit at fixed offsets from the top: a taller node moves no edge. So the model
      // changes silently and a drawn view redraws the attrs (and the size-bound body).
      if (resized) node.resize(W, height, { ...UI, silent: true });
      node.setAttrs(attrs, { ...UI, silent: true });
      const view = graph.findViewByCell(node);
      if (view && graph.renderer.isViewMounted(view)) {
        const all = node.getAttrs();
        view.updateAttrs(view.container, all, {
          attrs: resized ? { ...attrs, body: all.body } : attrs,
          rootBBox: new X6.Rectangle(0, 0, W, height),
          selectors: view.selectors,
        });
      }
    } else {
      node.setAttrs(attrs, UI);
      if (resized) node.resize(W, height, UI);
    }
  }

  function streamLines(text) {
    const lines = [];
    for (const raw of String(text).split("\n")) {
      if (!raw) {
        lines.push("");
        continue;
      }
      for (let i = 0; i < raw.length; i += STREAM_CHARS) lines.push(raw.slice(i, i + STREAM_CHARS));
    }
    while (lines.length && lines[lines.length - 1] === "") lines.pop();
    return lines.slice(-STREAM_LINES).join("\n") || " ";
  }

  // ---- Document <-> graph ----------------------------------------------------------------
  function edgeDoc(edge) {
    const source = edge.getSourceCellId();
    const target = edge.getTargetCellId();
    const sourcePort = edge.getSourcePortId();
    const targetPort = edge.getTargetPortId();
    if (!source || !target || !sourcePort || !targetPort) return null;
    return { source, target, source_port: portName(sourcePort), target_port: portName(targetPort) };
  }

  function documentJSON() {
    const nodes = graph.getNodes().map((node) => {
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
    const name = (nameInput && nameInput.value.trim()) || graphAttrs.name || DATA.name;
    return { directed: true, multigraph: true, graph: { ...graphAttrs, name }, nodes, edges };
  }

  function nodeMeta(doc, edges) {
    const type = doc.type;
    const config = doc.config || {};
    const server = serverPorts(doc.id, type, config);
    lastPorts.set(doc.id, server);
    const { items, rows } = portItems(server, connectedPorts(doc.id, edges));
    const at = doc.position || { x: 0, y: 0 };
    return {
      id: doc.id,
      shape: "sy-node",
      x: at.x,
      y: at.y,
      width: W,
      height: baseHeight(rows),
      zIndex: 2,
      data: { type, config, label: doc.label || "", rows },
      ports: { items },
      attrs: {
        frame: { class: `sy-node t-${type} st-idle` },
        title: { text: shortText(doc.label || doc.id, 22) },
        kind: { text: type || "?" },
        stream: { y: baseHeight(rows) + 1 },
        streamBg: { y: baseHeight(rows) - 4 },
        problem: { y: baseHeight(rows) + 14 },
      },
    };
  }

  function edgeMeta(e) {
    return {
      shape: "sy-edge",
      source: { cell: e.source, port: `out:${e.source_port}` },
      target: { cell: e.target, port: `in:${e.target_port}` },
    };
  }

  function load(doc, options) {
    const opts = options || {};
    doc = doc || { graph: { name: DATA.name }, nodes: [], edges: [] };
    if (Number.isInteger(opts.version)) {
      try {
        localStorage.removeItem(draftKey());
      } catch (err) { /* storage disabled */ }
      version = opts.version;
      if (versionLabel) versionLabel.textContent = `v${version}`;
      ["conflict", "draft", "old-draft"].forEach(clearBanner);
    }
    graphAttrs = { ...(doc.graph || {}) };
    if (nameInput && graphAttrs.name) nameInput.value = graphAttrs.name;
    const ids = new Set((doc.nodes || []).map((n) => n.id));
    const edges = (doc.edges || []).filter((e) => ids.has(e.source) && ids.has(e.target));
    runState.clear();
    tall.clear();
    stale.clear();
    problems.clear();
    renderProblemList([]);
    lastPorts.clear();
    const nodes = (doc.nodes || []).map((n) => nodeMeta(n, edges));
    const cells = [...nodes, ...edges.map(edgeMeta)];
    // Frame the flow before drawing it, so the first render is already the visible area.
    if (!opts.keepView) fit(nodes);
    history.disable();
    loading = true;
    // X6 renders in 16 ms slices, one per frame, and the browser lays out and paints the
    // growing SVG after each: for a big flow, larger slices finish several times sooner.
    const queue = graph.renderer && graph.renderer.schedule && graph.renderer.schedule.queue;
    if (queue && "frameInterval" in queue) {
      queue.frameInterval = 400;
      graph.once("render:done", () => { queue.frameInterval = 16; });
    }
    try {
      graph.fromJSON({ cells }, UI);
    } finally {
      loading = false;
    }
    history.enable();
    history.clean();
    for (const node of graph.getNodes()) {
      const data = node.getData();
      if (!portCache.has(portKey(data.type, data.config))) requestPorts(node);
    }
    if (opts.readOnly !== undefined) setReadOnly(opts.readOnly);
    if (!opts.keepSaved) savedText = JSON.stringify(documentJSON());
    closePanel();
    checkDirty();
  }

  // Frame the flow: all of it when it fits at a readable zoom, else its start (left) at
  // that zoom. Press F or "Fit" to see everything however small.
  const READABLE = 0.5;
  function fit(metas, options) {
    const opts = options || {};
    const boxes = metas
      ? metas.map((m) => ({ x: m.x, y: m.y, width: m.width, height: m.height }))
      : graph.getNodes().map((n) => n.getBBox());
    if (!boxes.length) {
      graph.zoomTo(1);
      graph.translate(40, 40);
      return;
    }
    const x = Math.min(...boxes.map((b) => b.x));
    const y = Math.min(...boxes.map((b) => b.y));
    const right = Math.max(...boxes.map((b) => b.x + b.width));
    const bottom = Math.max(...boxes.map((b) => b.y + b.height));
    const rect = { x, y, width: right - x, height: bottom - y };
    const area = { width: container.clientWidth || 800, height: container.clientHeight || 600 };
    const pad = 48;
    let scale = Math.min(1, (area.width - 2 * pad) / rect.width, (area.height - 2 * pad) / rect.height);
    if (!opts.all) scale = Math.max(scale, READABLE);
    scale = Math.max(scale, 0.05);
    graph.zoomTo(scale);
    const fitsX = rect.width * scale <= area.width - 2 * pad;
    const fitsY = rect.height * scale <= area.height - 2 * pad;
    const tx = fitsX ? (area.width - rect.width * scale) / 2 - x * scale : pad - x * scale;
    const ty = fitsY ? (area.height - rect.height * scale) / 2 - y * scale : pad - y * scale;
    graph.translate(tx, ty);
  }

  // ---- Dirty flag and the local draft ----------------------------------------------------
  const draftPrefix = `switchyard:draft:${DATA.flowId}:`;
  const draftKey = () => draftPrefix + version;
  let dirtyTimer = null;

  const emptyHint = $("[data-empty-hint]");
  function updateEmptyHint() {
    if (emptyHint) emptyHint.hidden = graph.getNodes().length > 0;
  }

  function scheduleDirtyCheck() {
    clearTimeout(dirtyTimer);
    dirtyTimer = setTimeout(checkDirty, 200);
  }

  function checkDirty() {
    clearTimeout(dirtyTimer);
    updateEmptyHint();
    const text = JSON.stringify(documentJSON());
    const now = text !== savedText;
    try {
      if (!DATA.editable) {
        /* a read-only view keeps no drafts */
      } else if (now) {
        localStorage.setItem(draftKey(), JSON.stringify({ doc: JSON.parse(text), savedAt: Date.now() }));
      } else {
        localStorage.removeItem(draftKey());
      }
    } catch (err) {
      /* storage full or disabled: the flag still shows */
    }
    if (now !== dirty) {
      dirty = now;
      if (dirtyFlag) dirtyFlag.hidden = !dirty;
      document.dispatchEvent(new CustomEvent("switchyard:dirty", { detail: { dirty } }));
    }
    return dirty;
  }

  // Read before the first load(): a clean load clears the draft of its version.
  function readDrafts() {
    let draft = null;
    const others = [];
    try {
      draft = JSON.parse(localStorage.getItem(draftKey()) || "null");
      for (let i = 0; i < localStorage.length; i++) {
        const key = localStorage.key(i);
        if (key && key.startsWith(draftPrefix) && key !== draftKey()) others.push(key);
      }
    } catch (err) {
      /* storage disabled */
    }
    return { draft, others };
  }

  function restoreDraft({ draft, others }) {
    if (!DATA.editable) return;
    if (draft && draft.doc) {
      const serverDoc = DATA.doc;
      load(draft.doc, { keepSaved: true });
      const when = new Date(draft.savedAt || Date.now()).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      banner("draft", `Restored your unsaved changes from ${when}.`, [
        ["Discard them", () => { localStorage.removeItem(draftKey()); load(serverDoc); clearBanner("draft"); }],
      ], "info");
    } else if (others.length) {
      const versionOf = (k) => Number(k.slice(draftPrefix.length)) || 0;
      const key = others.sort((a, b) => versionOf(a) - versionOf(b)).pop();
      const base = key.slice(draftPrefix.length);
      banner("old-draft", `You have unsaved changes made on version ${base}; the flow is now at version ${version}.`, [
        ["Restore them", () => {
          const old = JSON.parse(localStorage.getItem(key) || "null");
          localStorage.removeItem(key);
          if (old && old.doc) load(old.doc, { keepSaved: true });
          checkDirty();
          clearBanner("old-draft");
        }],
        ["Discard", () => { others.forEach((k) => localStorage.removeItem(k)); clearBanner("old-draft"); }],
      ], "warn");
    }
  }

  // ---- Banners, problems -----------------------------------------------------------------
  function banner(id, text, actions, kind) {
    if (!banners) return;
    clearBanner(id);
    const box = document.createElement("div");
    box.className = `ed-banner ${kind || "info"}`;
    box.dataset.banner = id;
    box.setAttribute("role", kind === "err" || kind === "warn" ? "alert" : "status");
    const p = document.createElement("span");
    p.textContent = text;
    box.appendChild(p);
    for (const [label, action, testid] of actions || []) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "button small";
      b.textContent = label;
      if (testid) b.dataset.testid = testid;
      b.addEventListener("click", action);
      box.appendChild(b);
    }
    const close = document.createElement("button");
    close.type = "button";
    close.className = "ed-banner-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", () => box.remove());
    box.appendChild(close);
    banners.appendChild(box);
    return box;
  }

  function clearBanner(id) {
    if (!banners) return;
    banners.querySelectorAll(`[data-banner="${id}"]`).forEach((el) => el.remove());
  }

  function showProblems(list) {
    const previous = [...problems.keys()];
    problems.clear();
    for (const e of graph.getEdges()) e.attr("line/class", "sy-edge-line", UI);
    const items = list || [];
    for (const p of items) {
      if (p.node && !problems.has(p.node)) problems.set(p.node, p.message);
      if (p.edge) {
        const edge = findEdge(p.edge);
        if (edge) edge.attr("line/class", "sy-edge-line is-problem", UI);
      }
    }
    for (const id of new Set([...previous, ...problems.keys()])) {
      const node = graph.getCellById(id);
      if (node && node.isNode()) renderNode(node);
    }
    renderProblemList(items);
  }

  function clearProblems() {
    showProblems([]);
  }

  // networkx numbers parallel edges 0, 1, … per (source, target) in document order.
  function findEdge(where) {
    const [source, target, key] = where;
    const between = graph.getEdges().filter((e) => e.getSourceCellId() === source && e.getTargetCellId() === target);
    return between[Number(key)] || between[0] || null;
  }

  function renderProblemList(items) {
    if (!problemsBox) return;
    const list = problemsBox.querySelector("ol");
    list.replaceChildren();
    for (const p of items) {
      const li = document.createElement("li");
      const where = p.node || (p.edge ? `${p.edge[0]} → ${p.edge[1]}` : "");
      if (where) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "link ed-problem-where";
        b.textContent = where;
        b.addEventListener("click", () => focusNode(p.node || p.edge[0]));
        li.appendChild(b);
      }
      const m = document.createElement("span");
      m.textContent = p.message || p.text || "";
      li.appendChild(m);
      list.appendChild(li);
    }
    problemsBox.hidden = items.length === 0;
    const count = problemsBox.querySelector("[data-count]");
    if (count) count.textContent = String(items.length);
  }

  function focusNode(id) {
    const node = id && graph.getCellById(id);
    if (!node) return;
    selection.clean();
    selection.select(node);
    graph.centerCell(node);
  }

  // ---- Saving ----------------------------------------------------------------------------
  function save() {
    if (saving) return saving;
    if (readOnly) return Promise.reject(Object.assign(new Error("read only"), { status: 403 }));
    if (saveButton) saveButton.setAttribute("aria-busy", "true");
    saving = flushForm().then(saveNow);
    return saving;
  }

  function saveNow() {
    const doc = documentJSON();
    const base = version;
    if (JSON.stringify(doc) === savedText) {
      // Nothing changed: no new version.
      saving = null;
      if (saveButton) saveButton.removeAttribute("aria-busy");
      toast(`No changes since version ${version}`);
      return Promise.resolve(version);
    }
    const body = { graph: doc, base_version: base, name: doc.graph.name };
    if (messageInput && messageInput.value.trim()) body.message = messageInput.value.trim();
    return api("PUT", DATA.urls.flow, body)
      .then(({ status, body: out }) => {
        if (status === 200) {
          try {
            localStorage.removeItem(draftPrefix + base);
          } catch (err) { /* ignore */ }
          version = out.version;
          graphAttrs = { ...doc.graph };
          savedText = JSON.stringify(doc);
          if (versionLabel) versionLabel.textContent = `v${version}`;
          clearProblems();
          ["conflict", "save-error", "draft", "old-draft"].forEach(clearBanner);
          checkDirty();
          if (messageInput) messageInput.value = "";
          toast(`Saved version ${version}`);
          document.dispatchEvent(new CustomEvent("switchyard:saved", { detail: { version } }));
          return version;
        }
        const error = new Error((out && out.detail) || `save failed (${status})`);
        error.status = status;
        error.body = out;
        if (status === 409) {
          const current = out.current_version;
          banner("conflict", `Someone saved version ${current} while you were editing. Your changes are kept here and in this browser; reload to see theirs.`, [
            ["Reload", () => window.location.reload(), "reload"],
          ], "warn").dataset.testid = "conflict";
          document.dispatchEvent(new CustomEvent("switchyard:conflict", { detail: { version: current } }));
        } else if (status === 400 && out && out.problems) {
          showProblems(out.problems);
          banner("save-error", `Not saved: ${out.problems.length} problem${out.problems.length === 1 ? "" : "s"} to fix first.`, [], "err");
        } else {
          banner("save-error", `Not saved: ${error.message}`, [], "err");
        }
        throw error;
      })
      .finally(() => {
        saving = null;
        if (saveButton) saveButton.removeAttribute("aria-busy");
      });
  }

  function toast(text) {
    const box = banner("toast", text, [], "ok");
    if (box) setTimeout(() => box.remove(), 2500);
  }

  function api(method, url, body) {
    return fetch(url, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf(), Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(
      (response) =>
        response
          .json()
          .catch(() => ({ detail: response.statusText }))
          .then((out) => ({ status: response.status, body: out })),
      (err) => ({ status: 0, body: { detail: `the server could not be reached (${err.message})` } }),
    );
  }

  // ---- The node form panel (server-rendered, htmx) ---------------------------------------
  function openPanel(node) {
    if (!panel || !window.htmx) return;
    const data = node.getData() || {};
    panelNode = node.id;
    window.htmx.ajax("POST", DATA.urls.nodeForm, {
      target: panel,
      swap: "innerHTML",
      headers: { "X-CSRFToken": csrf() },
      values: {
        type: data.type,
        node_id: node.id,
        label: data.label || "",
        config: JSON.stringify(data.config || {}),
        readonly: readOnly ? "1" : "0",
      },
    });
  }

  function closePanel() {
    panelNode = null;
    if (panel) panel.innerHTML = panelPlaceholder;
  }

  // Once htmx has wired the newly placed form, mark it (tests and scripts wait for this).
  document.body.addEventListener("htmx:afterSettle", (event) => {
    const form = event.detail && event.detail.target === panel && panel.querySelector("form.nf");
    if (form) form.dataset.ready = "true";
  });

  // Edits typed in the form reach the node after a short debounce; save() waits for them.
  let formEdits = 0;
  let formApplied = 0;
  let formWaiters = [];
  if (panel) {
    panel.addEventListener("input", (event) => {
      if (event.target.closest && event.target.closest("form.nf")) formEdits += 1;
    });
  }
  document.body.addEventListener("htmx:beforeRequest", (event) => {
    const elt = event.detail && event.detail.elt;
    if (elt && elt.matches && elt.matches("form.nf")) elt.dataset.edits = String(formEdits);
  });

  function formSettled(elt) {
    formApplied = Math.max(formApplied, Number(elt.dataset.edits || 0));
    const waiting = formWaiters;
    formWaiters = [];
    waiting.forEach((resolve) => resolve());
  }

  function flushForm() {
    const form = panel && panel.querySelector("form.nf[hx-post]");
    if (!form || formEdits <= formApplied || !window.htmx) return Promise.resolve();
    const pending = new Promise((resolve) => {
      formWaiters.push(resolve);
      setTimeout(resolve, 3000);
    });
    window.htmx.trigger(form, "switchyard:flush");
    return pending;
  }

  // A form response carries the config it checked; the node takes it (as typed when invalid).
  document.body.addEventListener("htmx:afterRequest", (event) => {
    const elt = event.detail && event.detail.elt;
    if (!elt || !elt.matches || !elt.matches("form.nf")) return;
    try {
      if (event.detail.successful) applyFormResponse(event);
    } finally {
      formSettled(elt);
    }
  });

  function applyFormResponse(event) {
    const html = new DOMParser().parseFromString(event.detail.xhr.responseText, "text/html");
    const script = html.querySelector("[data-node-config] script");
    if (!script) return;
    const payload = JSON.parse(script.textContent);
    const node = graph.getCellById(payload.node);
    if (!node || readOnly) return;
    const data = node.getData() || {};
    const config = { ...payload.config };
    for (const key of payload.keep || []) {
      if (data.config && key in data.config) config[key] = data.config[key];
    }
    const label = payload.label || "";
    if (JSON.stringify(config) === JSON.stringify(data.config || {}) && label === (data.label || "")) return;
    node.setData({ type: data.type, config, label, rows: data.rows }, { overwrite: true, source: "form" });
  }

  // ---- Graph events ----------------------------------------------------------------------
  graph.on("node:change:data", ({ node, options }) => {
    if (options && options.derived) return;
    requestPorts(node);
    renderNode(node);
    if (panelNode === node.id && !(options && options.source === "form")) openPanel(node);
  });

  graph.on("cell:added", ({ cell, options }) => {
    if (loading) return;
    if (cell.isEdge()) {
      const target = cell.getTargetCell();
      if (target) syncPorts(target);
    } else if (cell.id === pendingDrop) {
      pendingDrop = null;
      requestPorts(cell);
      selection.clean();
      selection.select(cell);
      openPanel(cell);
    }
    if (!(options && options.derived)) scheduleDirtyCheck();
  });

  graph.on("cell:removed", ({ cell, options }) => {
    if (loading) return;
    if (cell.isEdge()) {
      for (const id of [cell.getSourceCellId(), cell.getTargetCellId()]) {
        const node = id && graph.getCellById(id);
        if (node) syncPorts(node);
      }
    } else {
      runState.delete(cell.id);
      if (panelNode === cell.id) closePanel();
    }
    if (!(options && options.derived)) scheduleDirtyCheck();
  });

  graph.on("cell:changed", ({ options }) => {
    if (!loading && !(options && options.derived)) scheduleDirtyCheck();
  });

  // A new edge: the merge's "+" port becomes a port named after the source node. This runs
  // inside X6's "add-edge" batch, so undo and redo take the renaming along with the edge.
  graph.on("edge:connected", ({ edge, isNew }) => {
    const target = edge.getTargetCell();
    const source = edge.getSourceCell();
    if (!target || !source) return;
    if (edge.getTargetPortId() === "in:+") {
      const taken = new Set(target.getPorts().map((p) => p.id));
      const stem = String(source.id).replace(/[^A-Za-z0-9_]/g, "_").replace(/^(?=\d)/, "_") || "value";
      let name = stem;
      for (let i = 2; taken.has(`in:${name}`); i++) name = `${stem}_${i}`;
      const items = [...target.getPorts(), { id: `in:${name}`, group: "in" }];
      target.setPropByPath("ports/items", items, { rewrite: true, derived: true });
      edge.setTarget({ cell: target.id, port: `in:${name}` });
    }
    syncPorts(target);
    syncPorts(source);
    if (isNew) scheduleDirtyCheck();
  });

  // Ends moved by undo, redo or code (not a drag in progress): both nodes' ports follow.
  for (const end of ["source", "target"]) {
    graph.on(`edge:change:${end}`, ({ current, previous, options }) => {
      if (loading || (options && (options.ui || options.derived))) return;
      for (const terminal of [previous, current]) {
        const node = terminal && terminal.cell && graph.getCellById(terminal.cell);
        if (node && node.isNode()) syncPorts(node);
      }
    });
  }

  graph.on("node:click", ({ node, e }) => {
    openPanel(node);
    for (const callback of clickCallbacks) {
      try {
        callback(node.id, e);
      } catch (err) {
        console.error(err);
      }
    }
  });

  graph.on("blank:click", () => closePanel());

  graph.on("node:selected", ({ node }) => renderNode(node));
  graph.on("node:unselected", ({ node }) => {
    if (graph.getCellById(node.id)) renderNode(node);
  });
  graph.on("edge:selected", ({ edge }) => edge.attr("line/class", "sy-edge-line is-selected", UI));
  graph.on("edge:unselected", ({ edge }) => {
    if (graph.getCellById(edge.id)) edge.attr("line/class", "sy-edge-line", UI);
  });
  // A remove button on the hovered edge. (Delegated mouseenter/leave do not fire in the
  // UMD build of X6 3.1.8; mouseover/out do, so the button is added and removed by hand.)
  graph.on("edge:mouseover", ({ edge }) => {
    if (!readOnly && !edge.hasTools()) {
      edge.addTools([{ name: "button-remove", args: { distance: "50%" } }], UI);
    }
  });
  graph.on("edge:mouseout", ({ edge, e }) => {
    const related = e && e.relatedTarget;
    const view = related && graph.findViewByElem(related);
    if (view && view.cell === edge) return; // onto its own button
    if (graph.getCellById(edge.id) && edge.hasTools()) edge.removeTools(UI);
  });

  // ---- Palette: drag a node type onto the canvas -----------------------------------------
  function nextId(type) {
    const stem = String(type).replace(/[^A-Za-z0-9_]/g, "") || "node";
    const re = new RegExp(`^${stem}(\\d+)$`);
    let max = 0;
    for (const node of graph.getNodes()) {
      const m = re.exec(node.id);
      if (m) max = Math.max(max, Number(m[1]));
    }
    return `${stem}${max + 1}`;
  }

  function uniqueName(type, wanted) {
    const used = new Set(
      graph.getNodes().filter((n) => (n.getData() || {}).type === type).map((n) => ((n.getData() || {}).config || {}).name),
    );
    let name = wanted;
    for (let i = 2; used.has(name); i++) name = `${wanted}_${i}`;
    return name;
  }

  function newNodeDoc(type, at) {
    const palette = DATA.palette[type] || { config: {}, ports: { inputs: [], outputs: [] } };
    const id = nextId(type);
    const config = JSON.parse(JSON.stringify(palette.config || {}));
    if ("name" in config) config.name = uniqueName(type, id);
    portCache.set(portKey(type, config), palette.ports);
    return { id, type, config, position: at || { x: 0, y: 0 } };
  }

  document.querySelectorAll("[data-palette-type]").forEach((item) => {
    item.addEventListener("mousedown", (e) => {
      if (readOnly || e.button !== 0) return;
      e.preventDefault();
      const node = graph.createNode(nodeMeta(newNodeDoc(item.dataset.paletteType), []));
      dnd.start(node, e);
    });
    // Keyboard and click: add it in the middle of the view.
    item.addEventListener("keydown", (e) => {
      if (e.key !== "Enter" && e.key !== " ") return;
      e.preventDefault();
      addAtCentre(item.dataset.paletteType);
    });
  });

  function addAtCentre(type) {
    if (readOnly) return;
    const area = graph.getGraphArea();
    const doc = newNodeDoc(type, { x: Math.round(area.center.x - W / 2), y: Math.round(area.center.y - 30) });
    pendingDrop = doc.id;
    graph.addNode(nodeMeta(doc, []));
  }

  // ---- Editing commands ------------------------------------------------------------------
  function removeSelection() {
    if (readOnly) return;
    const cells = selection.getSelectedCells();
    if (!cells.length) return;
    graph.startBatch("delete");
    graph.removeCells(cells);
    graph.stopBatch("delete");
  }

  function copySelection() {
    const nodes = selection.getSelectedCells().filter((c) => c.isNode());
    if (!nodes.length) return;
    const ids = new Set(nodes.map((n) => n.id));
    const doc = documentJSON();
    clipboard = {
      nodes: doc.nodes.filter((n) => ids.has(n.id)),
      edges: doc.edges.filter((e) => ids.has(e.source) && ids.has(e.target)),
    };
    pasteCount = 0;
  }

  function paste() {
    if (readOnly || !clipboard) return;
    pasteCount += 1;
    const rename = new Map();
    const nodes = [];
    graph.startBatch("paste");
    for (const n of clipboard.nodes) {
      const id = nextId(n.type);
      rename.set(n.id, id);
      const config = JSON.parse(JSON.stringify(n.config || {}));
      if ((n.type === "input" || n.type === "output") && typeof config.name === "string") {
        config.name = uniqueName(n.type, config.name);
      }
      const at = n.position || { x: 0, y: 0 };
      const doc = { ...n, id, config, position: { x: at.x + 30 * pasteCount, y: at.y + 30 * pasteCount } };
      nodes.push(graph.addNode(nodeMeta(doc, [])));
    }
    const edges = clipboard.edges.map((e) => ({ ...e, source: rename.get(e.source), target: rename.get(e.target) }));
    for (const e of edges) graph.addEdge(edgeMeta(e));
    graph.stopBatch("paste");
    nodes.forEach((n) => requestPorts(n));
    selection.clean();
    selection.select(nodes);
  }

  function undo() {
    if (!readOnly && history.canUndo()) history.undo();
  }

  function redo() {
    if (!readOnly && history.canRedo()) history.redo();
  }

  function autoLayout() {
    if (readOnly) return Promise.resolve();
    const sizes = {};
    for (const n of graph.getNodes()) sizes[n.id] = n.getSize();
    return api("POST", DATA.urls.layout, { graph: documentJSON(), sizes }).then(({ status, body }) => {
      if (status !== 200) {
        banner("layout", `Auto-layout failed: ${(body && body.detail) || status}`, [], "err");
        return;
      }
      graph.startBatch("layout");
      for (const [id, at] of Object.entries(body.positions)) {
        const node = graph.getCellById(id);
        if (node) node.position(at.x, at.y);
      }
      graph.stopBatch("layout");
      fit(null, { all: true });
    });
  }

  function isTyping(target) {
    if (!target || target === document.body) return false;
    const tag = target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
  }

  const help = document.getElementById("ed-help");
  const helpButton = $('[data-testid="help"]');
  function toggleHelp(show) {
    if (!help) return;
    help.hidden = show === undefined ? !help.hidden : !show;
    if (helpButton) helpButton.setAttribute("aria-expanded", String(!help.hidden));
  }

  document.addEventListener("keydown", (e) => {
    const mod = e.ctrlKey || e.metaKey;
    const key = e.key.toLowerCase();
    if (mod && key === "s") {
      e.preventDefault();
      save().catch(() => {});
      return;
    }
    if (isTyping(e.target)) return;
    if (mod && key === "z") {
      e.preventDefault();
      if (e.shiftKey) redo();
      else undo();
    } else if (mod && key === "y") {
      e.preventDefault();
      redo();
    } else if (mod && key === "c") {
      copySelection();
    } else if (mod && key === "v") {
      e.preventDefault();
      paste();
    } else if (mod && key === "a") {
      e.preventDefault();
      selection.select(graph.getCells());
    } else if (!mod && (e.key === "Delete" || e.key === "Backspace")) {
      e.preventDefault();
      removeSelection();
    } else if (!mod && e.key === "?") {
      toggleHelp();
    } else if (e.key === "Escape") {
      toggleHelp(false);
      selection.clean();
    } else if (!mod && key === "f") {
      fit(null, { all: true });
    } else if (!mod && (e.key === "+" || e.key === "=")) {
      graph.zoom(0.1);
    } else if (!mod && e.key === "-") {
      graph.zoom(-0.1);
    }
  });

  const on = (testid, handler) => {
    const el = $(`[data-testid="${testid}"]`);
    if (el) el.addEventListener("click", handler);
  };
  on("save", () => save().catch(() => {}));
  on("layout", () => autoLayout());
  on("undo", () => undo());
  on("redo", () => redo());
  on("help", () => toggleHelp());
  on("zoom-in", () => graph.zoom(0.1));
  on("zoom-out", () => graph.zoom(-0.1));
  on("zoom-fit", () => fit(null, { all: true }));
  if (nameInput) nameInput.addEventListener("input", scheduleDirtyCheck);
  document.addEventListener("click", (e) => {
    if (help && !help.hidden && !help.contains(e.target) && !(helpButton && helpButton.contains(e.target))) toggleHelp(false);
  });

  // ---- Read-only and run state -----------------------------------------------------------
  function setReadOnly(value) {
    readOnly = Boolean(value) || !DATA.editable;
    document.body.classList.toggle("ed-readonly", readOnly);
    if (nameInput) nameInput.readOnly = readOnly;
    for (const id of ["save", "layout", "undo", "redo"]) {
      const b = $(`[data-testid="${id}"]`);
      if (b) b.disabled = readOnly;
    }
    document.querySelectorAll("[data-palette-type]").forEach((el) => el.setAttribute("aria-disabled", String(readOnly)));
    if (panelNode) {
      const node = graph.getCellById(panelNode);
      if (node) openPanel(node);
    }
  }

  function state(nodeId) {
    if (!runState.has(nodeId)) runState.set(nodeId, {});
    return runState.get(nodeId);
  }

  function touch(nodeId) {
    const node = graph.getCellById(nodeId);
    if (node && node.isNode()) renderNode(node, true);
  }

  function setStatus(nodeId, status) {
    state(nodeId).status = STATUSES.includes(status) ? status : "idle";
    touch(nodeId);
  }

  function setText(nodeId, text) {
    state(nodeId).text = String(text || "").slice(-4000);
    touch(nodeId);
  }

  function appendText(nodeId, text) {
    const s = state(nodeId);
    s.text = ((s.text || "") + String(text || "")).slice(-4000);
    touch(nodeId);
  }

  function setProgress(nodeId, done, total) {
    const s = state(nodeId);
    s.done = Number(done) || 0;
    s.total = Number(total) || 0;
    touch(nodeId);
  }

  function setIteration(nodeId, n) {
    state(nodeId).iteration = Number(n) || 0;
    touch(nodeId);
  }

  // A node out of view has no mounted view: redrawing its model costs as much as a drawn
  // one's, for nothing. paintRunState marks such nodes stale and draws them when they
  // come into view ("view:mounted").
  function touchWhenDrawn(nodeId) {
    const node = graph.getCellById(nodeId);
    if (!node || !node.isNode()) return;
    const view = graph.findViewByCell(node);
    if (view && graph.renderer.isViewMounted(view)) {
      stale.delete(nodeId);
      renderNode(node, true);
    } else {
      stale.add(nodeId);
    }
  }

  graph.on("view:mounted", ({ view }) => {
    const cell = view && view.cell;
    if (cell && stale.delete(cell.id) && cell.isNode()) renderNode(cell, true);
  });

  function setNodeBadges(nodeId, badges) {
    state(nodeId).badges = Array.isArray(badges) ? badges.slice(0, TAG_SLOTS) : [];
    touch(nodeId);
  }

  // What a node shows for its run state; equal keys mean nothing to redraw.
  function runKey(s) {
    if (!s) return "";
    const badges = (s.badges || []).map((b) => `${b.kind}:${b.text}:${b.title || ""}`).join("|");
    return [s.status || "idle", s.text || "", `${s.done || 0}/${s.total || 0}`, s.iteration || 0, badges].join("\u0000");
  }

  function paintRunState(states, carried) {
    const before = new Map([...runState].map(([id, s]) => [id, runKey(s)]));
    runState.clear();
    for (const [id, s] of states || []) {
      runState.set(id, {
        status: STATUSES.includes(s.status) ? s.status : "idle",
        text: String(s.text || "").slice(-4000),
        done: Number(s.done) || 0,
        total: Number(s.total) || 0,
        iteration: Number(s.iteration) || 0,
        badges: Array.isArray(s.badges) ? s.badges.slice(0, TAG_SLOTS) : [],
      });
    }
    for (const id of new Set([...before.keys(), ...runState.keys()])) {
      if (before.get(id) !== runKey(runState.get(id))) touchWhenDrawn(id);
    }
    const want = new Set((carried || []).map(([node, port]) => `${node}\u0000${port}`));
    for (const e of graph.getEdges()) {
      const current = String(e.attr("line/class") || "");
      if (current !== "sy-edge-line" && current !== "sy-edge-line is-carried") continue;
      const key = `${e.getSourceCellId()}\u0000${portName(e.getSourcePortId())}`;
      const next = want.has(key) ? "sy-edge-line is-carried" : "sy-edge-line";
      if (current !== next) setEdgeClass(e, next);
    }
  }

  // Run marks on edges, like renderNode's quiet mode: the model quietly, a drawn line's class
  // directly (an edge's attrs change would re-route it).
  function setEdgeClass(edge, cls) {
    edge.attr("line/class", cls, { ...UI, silent: true });
    const view = graph.findViewByCell(edge);
    if (!view || !graph.renderer.isViewMounted(view)) return;
    const line = view.selectors && view.selectors.line;
    if (line) line.setAttribute("class", cls);
    else view.update();
  }

  function markEdges(sourceNodeId, sourcePort) {
    for (const e of graph.getEdges()) {
      if (e.getSourceCellId() === sourceNodeId && (!sourcePort || e.getSourcePortId() === `out:${sourcePort}`)) {
        setEdgeClass(e, "sy-edge-line is-carried");
      }
    }
  }

  // A version diff's mark on a node (versions.js): "added", "changed", "removed" or null.
  function markNode(nodeId, kind) {
    if (kind) diffMarks.set(nodeId, kind);
    else diffMarks.delete(nodeId);
    touch(nodeId);
  }

  function resetRunState() {
    const ids = [...runState.keys()];
    runState.clear();
    tall.clear();
    stale.clear();
    ids.forEach(touch);
    for (const e of graph.getEdges()) {
      if (String(e.attr("line/class") || "").includes("is-carried")) setEdgeClass(e, "sy-edge-line");
    }
  }

  // ---- Start -----------------------------------------------------------------------------
  for (const [id, ports] of Object.entries(DATA.ports || {})) {
    const node = (DATA.doc.nodes || []).find((n) => n.id === id);
    if (node && ports.known) portCache.set(portKey(node.type, node.config || {}), { inputs: ports.inputs, outputs: ports.outputs });
  }
  for (const [type, item] of Object.entries(DATA.palette || {})) {
    portCache.set(portKey(type, item.config), item.ports);
  }

  let resolveReady;
  const ready = new Promise((resolve) => {
    resolveReady = resolve;
  });

  const api_ = {
    graph,
    ready,
    documentJSON,
    load,
    setReadOnly,
    isReadOnly: () => readOnly,
    setStatus,
    appendText,
    setText,
    setProgress,
    setIteration,
    setNodeBadges,
    paintRunState,
    markEdges,
    markNode,
    resetRunState,
    showProblems,
    clearProblems,
    isDirty: () => checkDirty(),
    pendingSave: () => saving,
    save,
    onNodeClick: (callback) => clickCallbacks.push(callback),
    focusNode,
    autoLayout,
    undo,
    redo,
    get version() {
      return version;
    },
  };
  window.Switchyard = window.Switchyard || {};
  window.Switchyard.canvas = api_;

  const drafts = readDrafts();
  load(DATA.doc, { readOnly });
  restoreDraft(drafts);
  performance.mark("switchyard:canvas-loaded");
  const finish = () => {
    performance.mark("switchyard:canvas-ready");
    window.Switchyard.canvas.readyAt = performance.now();
    document.documentElement.dataset.canvas = "ready";
    resolveReady(api_);
    document.dispatchEvent(new CustomEvent("switchyard:canvas-ready"));
    setTimeout(addMinimap, 0);
  };
  if (graph.getCellCount()) {
    let done = false;
    const once = () => {
      if (!done) {
        done = true;
        requestAnimationFrame(finish);
      }
    };
    graph.once("render:done", once);
    setTimeout(once, 3000);
  } else {
    requestAnimationFrame(finish);
  }
})();
