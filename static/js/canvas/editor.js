/*
 * canvas/editor.js — the flow canvas, editable or read-only: AntV X6 3.1.8
 * (static/vendor/x6.min.js, a classic script read through its global X6).
 *
 * The server renders every form, list and panel (the node form comes from
 * /flows/<id>/node-form/ through htmx); this file draws the graph, places that HTML, and
 * speaks JSON to /api/flows/<id> (save) and /api/editor/{ports,layout}. Ports always come
 * from the server, computed by the engine's node types; nothing here knows a node type.
 *
 * Beside it: shapes.js (how nodes and edges look), document.js (flow document <-> cells),
 * runstate.js (a run painted on the canvas), panel.js (the node form), drafts.js (unsaved
 * work in localStorage), drill.js (a map's inner flow on the canvas), banners.js,
 * keyboard.js (the canvas without a mouse), notes.js (sticky notes and groups: X6 nodes
 * that are not flow nodes, see isAnnotation).
 *
 * `canvas` (exported; also window.Switchyard.canvas, for runs/view.js and tests), null on a
 * page without #editor-data — the interface other scripts use:
 *
 *   graph                      the X6 Graph
 *   ready                      a Promise, resolved once the flow is drawn
 *   documentJSON()             the current flow document (see README, "The flow document")
 *   load(doc, {readOnly})      draw another document (history, run state and problems cleared;
 *                              it becomes the "saved" state the dirty flag compares against)
 *   load(doc, {warnings, problems})   with the document's warnings and problems as the server told them (no
 *                              check is asked for until the document differs)
 *   load(doc, {version, keepView})   the saved version `version` becomes the base saves
 *                              name (a teammate's save, loaded in place: collab.js); the local
 *                              draft of the old base is dropped; keepView keeps zoom and pan
 *   setReadOnly(bool)          no moving, connecting, deleting or editing while true
 *   isReadOnly()
 *   setStatus(nodeId, status)  idle | queued | running | waiting | done | skipped | failed |
 *                              cancelled (waiting: paused at a breakpoint or for an answer)
 *   breakpoints()              the node ids this browser marked (breakpoints.js), which a run
 *                              from the editor pauses before; toggleBreakpoint(nodeId) (B, F9,
 *                              the node form's button) marks or unmarks one
 *   appendText(nodeId, text)   streamed text, shown inside the node: the last 6 lines
 *   setText(nodeId, text)
 *   setProgress(nodeId, done, total)   a bar under the node's title
 *   setIteration(nodeId, n)    a badge "×n" when n > 1
 *   setError(nodeId, error)    why a failed node failed: under the node, and in its form
 *   setNodeBadges(nodeId, [{kind, text, title}])   small tags above the node (kind: cost |
 *                              cached | reused; title is the hover text); [] removes them
 *   paintRunState(states, carried)   the whole run state in one pass, as after a seek:
 *                              states = [[nodeId, {status, text, done, total, iteration,
 *                              badges, error}]], carried = [[sourceNodeId, sourcePort]]; every
 *                              other node goes back to idle; only nodes whose state changed
 *                              are redrawn
 *   markEdges(sourceNodeId, sourcePort)  the edges that carried a value get highlighted
 *   markNode(nodeId, kind)     a version diff's mark: added | changed | removed | null
 *   resetRunState()            everything above back to idle and empty
 *   showProblems([{node, message, edge?}]) / clearProblems()   red outline + message + list;
 *                              why the flow cannot run yet: asked of POST urls.validate while
 *                              editing, told by each save (which keeps them on the version)
 *                              and by a refused run; they stop a run, never a save
 *   showWarnings([{node, message, edge?}])   amber dashed outline + message + their own list;
 *                              asked of POST urls.validate while editing and told by each
 *                              save; they never stop a save or a run
 *   isDirty()                  unsaved changes?
 *   pendingSave()              the save in flight (a Promise), or null
 *   save()                     Promise resolving to the saved version number, or rejecting
 *                              with an Error whose .status is 400 / 409 / 0 (network) …
 *   onNodeClick(callback)      callback(nodeId, event) on every click on a node
 *   focusNode(nodeId)          select it and bring it into view
 *   drill.open(mapId) / drill.close(depth) / drill.path()   a map's inner flow drawn in
 *                              place of its parent (drill.js; double-click a map); the
 *                              document stays the whole flow; run-state calls are ignored
 *                              while inside (they name the flow's own nodes)
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
import { isTyping } from "../lib/keys.js";
import { requestJSON } from "../lib/net.js";
import { token } from "../theme.js";
import { keepFramed } from "./autofit.js";
import { banner, clearBanner, toast } from "./banners.js";
import { attachRouting } from "./routes.js";
import { edgeDoc, edgeMeta, findEdge, framing, graphDocument, nextId, nodeMeta, uniqueName } from "./document.js";
import { Breakpoints } from "./breakpoints.js";
import { Drafts } from "./drafts.js";
import { Drill } from "./drill.js";
import { setFormProblems, syncForm, watchForms } from "./nodeproblems.js";
import { attachKeyboard } from "./keyboard.js";
import { annotationCells, attachNotes, isAnnotation, registerAnnotationShapes } from "./notes.js";
import { applyChanges, displayName, documentChanges, nameWithKey } from "./keys.js";
import { Minimap } from "./minimap.js";
import { freeSpot, mountPalette } from "./palette.js";
import { variableName, withVariable } from "./wiring.js";
import { Panel } from "./panel.js";
import { openQuickAdd } from "./quickadd.js";
import { RunState } from "./runstate.js";
import { cachedPortPositions, fastViewOptions } from "./x6views.js";
import {
  PROBLEM_CHARS, STREAMING, W, baseHeight, connectedPorts, edgeLabels, newInPort, nodeHeight, portItems, portKey, portName,
  registerShapes, shortText, streamLines, tagAttrs, titleText,
} from "./shapes.js";

// Options marking changes that are not edits of the flow (ports, sizes, run state, styles):
// history skips them and they never make the flow dirty. (X6 itself uses `ui` for user gestures.)
const UI = { derived: true };
// Under a node parked for a person (PROBLEM_CHARS at most).
const WAITING_TEXT = "Waiting for an answer";

const $ = (selector, root) => (root || document).querySelector(selector);

/** JSON to this server: {status, body}; status 0 when it cannot be reached. */
function api(method, url, body) {
  return requestJSON(method, url, body).then(
    (result) => ({ status: result.status, body: result.data || { detail: result.statusText } }),
    (err) => ({ status: 0, body: { detail: `the server could not be reached (${err.message})` } }),
  );
}

/** localStorage, or null where the browser refuses it. */
function storage() {
  try {
    return window.localStorage;
  } catch (err) {
    return null;
  }
}

function createCanvas(X6, DATA) {
  fastViewOptions(X6);
  cachedPortPositions(X6);
  registerShapes(X6);
  registerAnnotationShapes(X6);

  // ---- State -----------------------------------------------------------------------------
  let readOnly = !DATA.editable;
  // CSS colours a node by its type's category (data-category, tokens --cat-*).
  const categoryOf = (type) => (DATA.categories || {})[type] || "";
  let version = DATA.version;
  let graphAttrs = {};
  let savedText = "";
  let dirty = false;
  let saving = null;
  const portCache = new Map(); // type + config JSON -> {inputs, outputs}
  const lastPorts = new Map(); // node id -> the ports last drawn from the server
  const portRequests = new Map(); // node id -> sequence number of the latest request
  const problems = new Map(); // node id -> message
  const warnings = new Map(); // node id -> message (the flow runs; it may surprise)
  const diffMarks = new Map(); // node id -> added | changed | removed (a version diff)
  const clickCallbacks = [];
  const drafts = new Drafts(DATA.flowId);
  // This browser's breakpoints on the flow (breakpoints.js): never part of the document.
  const breakpoints = new Breakpoints(DATA.flowId, storage());
  let clipboard = null;
  let pasteCount = 0;
  let pendingDrop = null;
  let loading = false; // while load() builds the graph, cell events need no handling

  const container = document.getElementById("ed-canvas");
  const nameInput = $('[data-testid="flow-name"]');
  const versionLabel = $('[data-testid="version"]');
  const dirtyFlag = $('[data-testid="dirty"]');
  const saveButton = $('[data-testid="save"]');
  const messageInput = $('[data-testid="save-message"]');
  const problemsBox = $('[data-testid="problems"]');
  const warningsBox = $('[data-testid="warnings"]');

  const graph = new X6.Graph({
    container,
    // Only cells in (or near) the visible area are drawn: big flows open fast.
    virtual: { enabled: true, margin: 160 },
    autoResize: true,
    grid: { size: 10, visible: true, type: "dot", args: { color: token("--grid-dot"), thickness: 1 } },
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
      router: { name: "sy-route" },
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

  attachRouting(graph);

  // The grid is painted from JS: it follows the theme (theme.js) by being painted again.
  document.addEventListener("switchyard:theme", () =>
    graph.drawGrid({ type: "dot", args: { color: token("--grid-dot"), thickness: 1 } }),
  );

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
  const run = new RunState(graph, (node) => renderNode(node, true));
  const panel = new Panel(graph, DATA.urls && DATA.urls.nodeForm, () => readOnly, {
    url: DATA.urls && DATA.urls.edgeForm,
    documentJSON: () => levelJSON(),
    rename: (oldId, key) => renameNode(oldId, key),
    renamePort: (nodeId, port, name) => renamePort(nodeId, port, name),
    edgeDoc,
    // A form belongs to the level drawn when it opened (panel.js); drill is made below,
    // before any form opens.
    levelPath: () => drill.path(),
    applyAt: (path, nodeId, type, update) => drill.applyAt(path, nodeId, type, update),
  });
  const drill = new Drill({
    graph,
    history,
    container,
    levelJSON: () => levelJSON(),
    checkDirty: () => checkDirty(),
    rootName,
    drawLevel(doc, { view }) {
      draw(doc, { inner: true, keepSaved: true, keepView: Boolean(view) });
      if (view) {
        graph.zoomTo(view.sx);
        graph.translate(view.tx, view.ty);
      }
    },
    view() {
      const { sx } = graph.scale();
      const { tx, ty } = graph.translate();
      return { sx, tx, ty };
    },
    paintItems(states, doneNodes) {
      run.paint(states, []);
      for (const id of doneNodes) run.markEdges(id);
    },
    repaintRun() {
      const root = document.querySelector("[data-run-view]");
      const view = root && root.switchyardRunView;
      if (view && view.model && view.canvasReady) view.paintNodes(view.model.fullChanges());
    },
  });
  // The page's run-state calls paint the flow's own nodes: not an inner flow's.
  const top = (fn) => (...args) => (drill.depth ? undefined : fn(...args));

  const keyboard = attachKeyboard(graph, container, {
    selection,
    isReadOnly: () => readOnly,
    connectionAllowed,
    isFlowNode: (node) => !isAnnotation(node),
  });
  const notes = attachNotes(graph, container, { selection, isReadOnly: () => readOnly, UI, announce: keyboard.announce });

  // The minimap (minimap.js), made once the flow is drawn so that it never delays opening.
  function addMinimap() {
    const element = document.getElementById("ed-minimap");
    if (element) new Minimap(graph, element);
  }

  // ---- Ports -----------------------------------------------------------------------------
  function edgeList(nodeId) {
    const node = graph.getCellById(nodeId);
    if (!node) return [];
    return graph.getConnectedEdges(node).map(edgeDoc).filter(Boolean);
  }

  function serverPorts(nodeId, type, config) {
    return portCache.get(portKey(type, config)) || lastPorts.get(nodeId) || { inputs: [], outputs: [] };
  }

  function syncPorts(node) {
    if (isAnnotation(node)) return;
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

  // A ports request that fails (the server unreachable or busy: no answer, or a 5xx) is
  // asked again, 0.5, 1, 2 and 4 s later, unless the node has changed meanwhile: else the
  // node kept the ports of its old config until its next edit.
  const PORT_RETRIES = [500, 1000, 2000, 4000];
  function requestPorts(node, attempt = 0) {
    if (isAnnotation(node)) return;
    const data = node.getData() || {};
    const key = portKey(data.type, data.config);
    if (portCache.has(key)) {
      syncPorts(node);
      return;
    }
    const seq = (portRequests.get(node.id) || 0) + 1;
    portRequests.set(node.id, seq);
    api("POST", DATA.urls.ports, { type: data.type, config: data.config || {} }).then(({ status, body }) => {
      if (portRequests.get(node.id) !== seq) return;
      const live = graph.getCellById(node.id);
      if (status !== 200) {
        if ((status === 0 || status >= 500) && live && attempt < PORT_RETRIES.length) {
          setTimeout(() => {
            const now = graph.getCellById(node.id);
            if (now && portRequests.get(node.id) === seq) requestPorts(now, attempt + 1);
          }, PORT_RETRIES[attempt]);
        }
        return;
      }
      if (body.known) portCache.set(key, { inputs: body.inputs, outputs: body.outputs });
      if (live) syncPorts(live);
    });
  }

  // The field a wire dropped on this node's body becomes a variable of, or null.
  const variableFieldOf = (node) => ((DATA.palette || {})[(node.getData() || {}).type] || {}).variableField || null;

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
    if (isAnnotation(node)) return;
    const data = node.getData() || {};
    const state = run.get(node.id) || {};
    const rows = data.rows || 1;
    const problem = problems.get(node.id);
    // A problem says more than a warning: a node shows one message, the problem first.
    const warning = problem ? null : warnings.get(node.id);
    // A runtime error shows on the failed node (live and in a replay) when nothing else does.
    const failure = !problem && !warning && state.status === "failed" ? state.error || "" : "";
    // A node parked for a person says so under its frame (the run page opens its form on a click).
    const waits = !problem && !warning && state.status === "waiting";
    const hasStream = Boolean(state.text);
    if (hasStream) run.tall.add(node.id);
    const base = baseHeight(rows);
    // A node keeps its stream's room once it has streamed: seeking back and forth in a
    // replay then never resizes nodes (and re-routes their edges) again.
    const height = nodeHeight(rows, hasStream || run.tall.has(node.id) || STREAMING.has(categoryOf(data.type)));
    const classes = [
      "sy-node",
      `t-${data.type}`,
      `st-${state.status || "idle"}`,
      problem ? "has-problem" : "",
      warning ? "has-warning" : "",
      diffMarks.has(node.id) ? `diff-${diffMarks.get(node.id)}` : "",
      hasStream ? "has-stream" : "",
      state.total ? "has-progress" : "",
      state.iteration > 1 ? "has-iteration" : "",
      selection.isSelected(node) ? "is-selected" : "",
      breakpoints.has(node.id) && !drill.depth ? "has-breakpoint" : "",
    ].filter(Boolean);
    const progress = state.total ? Math.max(0, Math.min(1, state.done / state.total)) : 0;
    const attrs = {
      frame: { class: classes.join(" "), "data-category": categoryOf(data.type) },
      title: { text: titleText(displayName({ ...data, id: node.id }), data.type) },
      kind: { text: data.type || "?" },
      bar: { width: state.total ? Math.round(W * progress) : 40 },
      streamBg: { y: base - 4 },
      stream: { y: base + 1, text: hasStream ? streamLines(state.text) : "" },
      badgeText: { text: state.iteration > 1 ? `×${state.iteration}` : "" },
      problem: {
        y: height + 14,
        text: shortText(problem || warning || failure || (waits ? WAITING_TEXT : ""), PROBLEM_CHARS),
        class: warning
          ? "sy-problem-text is-warning"
          : failure
            ? "sy-problem-text is-failure"
            : waits
              ? "sy-problem-text is-waiting"
              : "sy-problem-text",
      },
      ...tagAttrs(state.badges || []),
    };
    const size = node.getSize();
    const resized = size.height !== height || size.width !== W;
    if (quiet) {
      // Ports sit at fixed offsets from the top: a taller node moves no edge. So the model
      // changes silently and a drawn view redraws the attrs (and the size-bound body).
      if (resized) node.resize(W, height, { ...UI, silent: true });
      // A run's text grows its nodes after the first framing (a run page's, on load).
      if (resized) framer.contentChanged();
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

  // ---- Document <-> graph ----------------------------------------------------------------
  // The whole flow; while a map's inner flow is drawn (drill.js), with it written back.
  function documentJSON() {
    return drill.compose();
  }

  function rootName(fallback) {
    return (nameInput && nameInput.value.trim()) || fallback || DATA.name;
  }

  /** The level drawn: the flow, or the inner flow of the map drilled into. */
  function levelJSON() {
    return graphDocument(graph, graphAttrs, drill.depth ? graphAttrs.name : rootName(graphAttrs.name));
  }

  // A node's key (or a merge's port) renamed: the server rewrites the document (edges, a
  // merge's port named after the node, prompts reading that port) and the difference is
  // applied as one undoable batch (keys.js).
  function applyDocument(after) {
    const changes = documentChanges(levelJSON(), after);
    const touched = applyChanges(graph, changes, { nodeMeta: (n, edges) => meta(n, edges), edgeMeta, edgeDoc, edges: after.edges || [] });
    touched.forEach((n) => requestPorts(n));
    for (const e of changes.addEdges) {
      for (const id of [e.source, e.target]) {
        const node = graph.getCellById(id);
        if (node) syncPorts(node);
      }
    }
    return changes;
  }

  function renameVia(url, body) {
    if (readOnly || !url) return Promise.resolve(null);
    // Inside a map, the inner flow drawn is the document renamed in.
    return api("POST", url, { graph: levelJSON(), ...body }).then(({ status, body: out }) => {
      if (status !== 200) {
        const message = (out.problems && out.problems[0] && out.problems[0].message) || out.detail;
        banner("rename", `Not renamed: ${message}`, [], "err");
        return null;
      }
      clearBanner("rename");
      return out.graph;
    });
  }

  let renaming = Promise.resolve();
  function renameNode(oldId, key) {
    renaming = renameVia(DATA.urls.rename, { node: oldId, key }).then((after) => {
      if (!after || !graph.getCellById(oldId)) return;
      const selected = selection.isSelected(graph.getCellById(oldId));
      // The form stays open (the user may be typing in it) and now edits the new key.
      panel.renamed(oldId, key);
      applyDocument(after);
      const node = graph.getCellById(key);
      if (node && selected) selection.select(node);
    });
    return renaming;
  }

  /** Resolves to an edge into the renamed port, or null when it was refused. */
  function renamePort(nodeId, port, name) {
    return renameVia(DATA.urls.renamePort, { node: nodeId, port, name }).then((after) => {
      if (!after) return null;
      applyDocument(after);
      const node = graph.getCellById(nodeId);
      if (node) syncPorts(node);
      return graph.getEdges().find((e) => e.getTargetCellId() === nodeId && e.getTargetPortId() === `in:${name}`) || null;
    });
  }

  function meta(doc, edges) {
    const server = serverPorts(doc.id, doc.type, doc.config || {});
    lastPorts.set(doc.id, server);
    return nodeMeta(doc, edges, server, categoryOf(doc.type));
  }

  function load(doc, options) {
    drill.reset();
    draw(doc, options);
  }

  // opts.inner: a map's inner flow (drill.js), drawn in place of its parent.
  function draw(doc, options) {
    const opts = options || {};
    doc = doc || { graph: { name: DATA.name }, nodes: [], edges: [] };
    if (Number.isInteger(opts.version)) {
      drafts.drop(version);
      version = opts.version;
      if (versionLabel) versionLabel.textContent = `v${version}`;
      ["conflict", "draft", "old-draft"].forEach(clearBanner);
    }
    graphAttrs = { ...(doc.graph || {}) };
    if (nameInput && graphAttrs.name && !opts.inner) nameInput.value = graphAttrs.name;
    const ids = new Set((doc.nodes || []).map((n) => n.id));
    const edges = (doc.edges || []).filter((e) => ids.has(e.source) && ids.has(e.target));
    run.clear();
    problems.clear();
    warnings.clear();
    checkedText = "";
    renderProblemList(problemsBox, []);
    renderProblemList(warningsBox, []);
    lastPorts.clear();
    const nodes = (doc.nodes || []).map((n) => meta(n, edges));
    const cells = [...nodes, ...edges.map(edgeMeta), ...annotationCells(doc)];
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
      holdUntilParsed(queue);
    }
    try {
      graph.fromJSON({ cells }, UI);
    } finally {
      loading = false;
    }
    notes.afterLoad();
    history.enable();
    history.clean();
    for (const node of graph.getNodes()) {
      const data = node.getData();
      if (!portCache.has(portKey(data.type, data.config))) requestPorts(node);
    }
    if (opts.readOnly !== undefined) setReadOnly(opts.readOnly);
    if (!opts.keepSaved) savedText = JSON.stringify(documentJSON());
    if (Array.isArray(opts.warnings)) {
      showWarnings(opts.warnings);
      checkedText = JSON.stringify(documentJSON());
    }
    if (Array.isArray(opts.problems)) showProblems(opts.problems);
    panel.close();
    checkDirty();
  }

  // The page's first render waits for DOMContentLoaded: htmx then looks through every
  // element of the page for hx-on attributes (one XPath over the document), and a canvas
  // drawn before it added thousands of SVG elements to that search (~70 ms for a 300-node
  // flow). Module scripts run before DOMContentLoaded, and htmx's listener was added
  // before ours, so the canvas is drawn right after htmx's pass, in the next frame.
  function holdUntilParsed(queue) {
    const nav = performance.getEntriesByType && performance.getEntriesByType("navigation")[0];
    if (!nav || nav.domContentLoadedEventStart > 0 || typeof queue.scheduleJob !== "function") return;
    const schedule = queue.scheduleJob;
    queue.scheduleJob = () => {};
    document.addEventListener(
      "DOMContentLoaded",
      () => {
        if (queue.scheduleJob !== schedule) delete queue.scheduleJob;
        if (queue.isFlushPending) queue.scheduleJob();
      },
      { once: true },
    );
  }

  let framedOptions;
  const framer = keepFramed(graph, container, () => fit(null, framedOptions));

  // Frame the flow: all of it when it fits at a readable zoom, else its start (left) at
  // that zoom. Press F or "Fit" to see everything however small.
  function fit(metas, options) {
    const boxes = metas
      ? metas.map((m) => ({ x: m.x, y: m.y, width: m.width, height: m.height }))
      : graph.getNodes().map((n) => n.getBBox());
    const area = { width: container.clientWidth || 800, height: container.clientHeight || 600 };
    const { scale, tx, ty } = framing(boxes, area, options);
    graph.zoomTo(scale);
    graph.translate(tx, ty);
    // The area may change size yet (a run page's timeline loads under it): framed again.
    framedOptions = options;
    framer.framed();
  }

  // ---- Dirty flag and the local draft ----------------------------------------------------
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
    // Inside a map the check is the inner flow's: its problems land on its nodes.
    scheduleCheck(drill.depth ? JSON.stringify(levelJSON()) : text);
    // A read-only view keeps no drafts.
    if (DATA.editable) {
      if (now) drafts.keep(version, JSON.parse(text));
      else drafts.drop(version);
    }
    if (now !== dirty) {
      dirty = now;
      if (dirtyFlag) dirtyFlag.hidden = !dirty;
      document.dispatchEvent(new CustomEvent("switchyard:dirty", { detail: { dirty } }));
    }
    return dirty;
  }

  // ---- Warnings: the engine's check of the flow as it is being edited -------------------
  let checkedText = "";
  let checkTimer = null;
  let checkSeq = 0;

  function scheduleCheck(text) {
    if (!DATA.urls || !DATA.urls.validate || text === checkedText) return;
    checkedText = text;
    const inner = drill.depth > 0;
    clearTimeout(checkTimer);
    checkTimer = setTimeout(() => {
      const seq = ++checkSeq;
      api("POST", DATA.urls.validate, { graph: JSON.parse(text) }).then(({ status, body }) => {
        // Only the answer for the newest document counts. Its problems are what a save would
        // list on the version (they never stop one); a document of the wrong shape (400)
        // has no warnings to give, and its problems are why a save would be refused. Inside
        // a map the document checked is the inner flow, whose nodes are the ones drawn.
        if (seq !== checkSeq || (status !== 200 && status !== 400)) return;
        showWarnings(status === 200 ? body.warnings : []);
        if (body && Array.isArray(body.problems)) showProblems(body.problems, inner);
      });
    }, 300);
  }

  function showWarnings(list) {
    const items = list || [];
    const previous = [...warnings.keys()];
    warnings.clear();
    for (const w of items) if (w.node && !warnings.has(w.node)) warnings.set(w.node, w.message);
    for (const id of new Set([...previous, ...warnings.keys()])) {
      const node = graph.getCellById(id);
      if (node && node.isNode()) renderNode(node);
    }
    renderProblemList(warningsBox, items);
  }

  // ---- Problems --------------------------------------------------------------------------
  // Problems of the flow name its top-level nodes; inside a map (drill.js) the inner
  // flow's own check (`level`) is what its nodes show.
  function showProblems(list, level) {
    if (drill.depth && !level) {
      checkedText = "";
      scheduleCheck(JSON.stringify(levelJSON()));
      return;
    }
    const previous = [...problems.keys()];
    problems.clear();
    const items = list || [];
    const problemEdges = new Set();
    for (const p of items) {
      if (p.node && !problems.has(p.node)) problems.set(p.node, p.message);
      if (p.edge) problemEdges.add(findEdge(graph, p.edge));
    }
    // Only edges whose class changes are touched: setting an attr copies the edge's attrs,
    // and a flow opens with a showProblems over every edge (600 in a 302-node flow).
    for (const e of graph.getEdges()) {
      const cls = problemEdges.has(e) ? "sy-edge-line is-problem" : "sy-edge-line";
      if (e.attr("line/class") !== cls) e.attr("line/class", cls, UI);
    }
    for (const id of new Set([...previous, ...problems.keys()])) {
      const node = graph.getCellById(id);
      if (node && node.isNode()) renderNode(node);
    }
    renderProblemList(problemsBox, items);
    setFormProblems(items);
  }

  function clearProblems() {
    showProblems([]);
  }

  function renderProblemList(box, items) {
    if (!box) return;
    const list = box.querySelector("ol");
    list.replaceChildren();
    for (const p of items) {
      const li = document.createElement("li");
      // A node goes by its label (with its key when they differ), not the bare key.
      const named = (id) => {
        const node = id && graph.getCellById(id);
        return node && node.isNode() ? nameWithKey({ ...(node.getData() || {}), id }) : id;
      };
      const where = p.node ? named(p.node) : p.edge ? `${named(p.edge[0])} → ${named(p.edge[1])}` : "";
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
    box.hidden = items.length === 0;
    const count = box.querySelector("[data-count]");
    if (count) count.textContent = String(items.length);
  }

  // ---- Breakpoints (a run from this editor pauses before these nodes) --------------------
  function toggleBreakpoint(id) {
    const node = id && graph.getCellById(id);
    if (!DATA.editable || drill.depth || !node || !node.isNode() || isAnnotation(node)) return false;
    const on = breakpoints.toggle(id);
    renderNode(node, true);
    syncBreakpointButtons();
    keyboard.announce(`${on ? "Breakpoint on" : "Breakpoint off"}: ${displayName({ ...node.getData(), id })}`);
    return on;
  }

  function toggleSelectedBreakpoints() {
    for (const cell of selection.getSelectedCells()) {
      if (cell.isNode() && !isAnnotation(cell)) toggleBreakpoint(cell.id);
    }
  }

  /** The node form's button says whether its node has one. */
  function syncBreakpointButtons() {
    document.querySelectorAll("[data-breakpoint-toggle]").forEach((button) => {
      const on = breakpoints.has(button.dataset.node);
      button.setAttribute("aria-pressed", String(on));
      button.textContent = on ? "Breakpoint on" : "Breakpoint";
    });
  }

  /** The breakpoints on nodes the flow has (marks on deleted nodes are forgotten). */
  function breakpointList() {
    breakpoints.keepOnly(graph.getNodes().filter((n) => !isAnnotation(n)).map((n) => n.id));
    return breakpoints.list();
  }

  document.addEventListener("click", (e) => {
    const button = e.target.closest && e.target.closest("[data-breakpoint-toggle]");
    if (button) toggleBreakpoint(button.dataset.node);
  });
  document.body.addEventListener("htmx:afterSettle", syncBreakpointButtons);

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
    // A rename the last form edit asked for is part of what is saved.
    saving = panel.flush().then(() => renaming).then(saveNow);
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
          drafts.drop(base);
          version = out.version;
          graphAttrs = { ...doc.graph };
          savedText = JSON.stringify(doc);
          if (versionLabel) versionLabel.textContent = `v${version}`;
          // Unfinished work is kept: the version lists its problems, which stop a run.
          const left = Array.isArray(out.problems) ? out.problems : [];
          showProblems(left);
          showWarnings(out.warnings);
          ["conflict", "save-error", "save-problems", "draft", "old-draft"].forEach(clearBanner);
          checkDirty();
          if (messageInput) messageInput.value = "";
          if (left.length) {
            const many = left.length === 1 ? "1 problem" : `${left.length} problems`;
            banner("save-problems", `Saved version ${version} with ${many}: it can't run or be published until they are fixed (see Problems).`, [], "warn").dataset.testid = "saved-with-problems";
          } else toast(`Saved version ${version}`);
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
          // Not a flow document at all (shape, size, identifiers, node types): nothing kept.
          showProblems(out.problems);
          banner("save-error", `Not saved: the document is not well-formed (${out.problems.length} error${out.problems.length === 1 ? "" : "s"}). Your changes are kept in this browser.`, [], "err");
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

  // ---- Graph events ----------------------------------------------------------------------
  graph.on("node:change:data", ({ node, options }) => {
    if (options && options.derived) return;
    requestPorts(node);
    renderNode(node);
    // A form's edit (a label, a prompt) is an edit even when no port or edge follows it.
    if (!loading) scheduleDirtyCheck();
    if (panel.nodeId === node.id && !(options && options.source === "form")) panel.reopen(node);
  });

  // An edge's loop settings changed (its form, undo, redo): its label follows, and an open
  // form that did not make the change shows the edge as it now is.
  graph.on("edge:change:data", ({ edge, options }) => {
    if (loading || (options && options.derived)) return;
    edge.setLabels(edgeLabels((edge.getData() || {}).kept), UI);
    // The remove button goes where the label is not: placed afresh on the next hover.
    if (edge.hasTools()) edge.removeTools(UI);
    // The label's own (derived) change would otherwise be the last word on this change.
    scheduleDirtyCheck();
    if (panel.edgeId === edge.id && !(options && options.source === "form")) panel.openEdge(edge, edgeDoc(edge));
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
      panel.open(cell);
    }
    if (!(options && options.derived)) scheduleDirtyCheck();
  });

  // A wire let go off any port: on the body of a node that makes ports from its template's
  // variables (a new llm), it becomes a new variable there and a wire to its port (X6 drops
  // the loose edge itself).
  graph.on("edge:removed", ({ edge }) => {
    if (loading || readOnly || replaying) return;
    const target = edge.getTarget();
    // A removed edge has left the model: its ends are read from its own data.
    const source = graph.getCellById(edge.getSourceCellId());
    const sourcePort = edge.getSourcePortId();
    if (!source || !sourcePort || !String(sourcePort).startsWith("out:") || !target || target.cell || target.x === undefined) return;
    const under = graph.getNodes().find((n) => n !== source && n.getBBox().containsPoint(target));
    if (under && variableFieldOf(under)) setTimeout(() => wireToBody(source, sourcePort, under), 0);
    // Empty canvas (or a click on the port): the menu of what to add next, wired from it.
    else if (!under) setTimeout(() => quickAdd(source, sourcePort, target), 0);
  });

  const paletteItems = () =>
    [...document.querySelectorAll("[data-palette-type]")].map((el) => ({
      type: el.dataset.paletteType, label: el.dataset.label || "", category: el.dataset.cat || "", description: el.dataset.description || "",
    }));

  function quickAdd(source, sourcePort, at) {
    if (readOnly || !graph.getCellById(source.id)) return;
    const client = graph.localToClient(at.x, at.y);
    openQuickAdd(container.parentElement, client, paletteItems(), (type) => {
      const doc = newNodeDoc(type);
      const size = { width: W, height: meta(doc, []).height };
      const beside = { x: Math.max(at.x, source.getBBox().x + source.getBBox().width) + 60 + W / 2, y: at.y };
      doc.position = freeSpot(graph.getNodes().map((n) => n.getBBox()), beside, size);
      graph.startBatch("quick-add");
      pendingDrop = doc.id;
      const node = graph.addNode(meta(doc, []));
      const inputs = ((DATA.palette[type] || {}).ports || {}).inputs || [];
      if (inputs.length) {
        graph.addEdge(edgeMeta({ source: source.id, target: node.id, source_port: portName(sourcePort), target_port: inputs[0] }));
      }
      // One undo takes back the node, its wire and the variable it made.
      else if (variableFieldOf(node)) wireToBody(source, sourcePort, node);
      graph.stopBatch("quick-add");
      syncPorts(node);
    });
  }

  function wireToBody(source, sourcePort, node) {
    if (!graph.getCellById(source.id) || !graph.getCellById(node.id)) return;
    const field = variableFieldOf(node);
    const taken = new Set(node.getPorts().filter((p) => p.group === "in").map((p) => portName(p.id)));
    const name = variableName(portName(sourcePort), taken);
    const data = node.getData() || {};
    const config = { ...(data.config || {}), [field]: withVariable((data.config || {})[field], name) };
    graph.startBatch("wire-variable");
    node.setPropByPath("ports/items", [...node.getPorts(), newInPort(name)], { rewrite: true, derived: true });
    node.setData({ ...data, config }, { overwrite: true });
    graph.addEdge(edgeMeta({ source: source.id, target: node.id, source_port: portName(sourcePort), target_port: name }));
    graph.stopBatch("wire-variable");
    syncPorts(node);
  }

  graph.on("cell:removed", ({ cell, options }) => {
    if (loading) return;
    if (cell.isEdge()) {
      for (const id of [cell.getSourceCellId(), cell.getTargetCellId()]) {
        const node = id && graph.getCellById(id);
        if (node) syncPorts(node);
      }
      if (panel.edgeId === cell.id) panel.close();
    } else {
      run.delete(cell.id);
      if (panel.nodeId === cell.id) panel.close();
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
      const items = [...target.getPorts(), newInPort(name)];
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
    if (isAnnotation(node)) return;
    panel.open(node);
    // The page's callbacks (the run view's inspector) know the flow's own nodes only.
    for (const callback of drill.depth ? [] : clickCallbacks) {
      try {
        callback(node.id, e);
      } catch (err) {
        console.error(err);
      }
    }
  });

  graph.on("edge:click", ({ edge }) => panel.openEdge(edge, edgeDoc(edge)));

  graph.on("blank:click", () => panel.close());

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
      // A loop-back edge's label sits half-way (and opens its form): its button stays clear.
      const distance = edge.getLabels().length ? "20%" : "50%";
      edge.addTools([{ name: "button-remove", args: { distance } }], UI);
    }
  });
  graph.on("edge:mouseout", ({ edge, e }) => {
    const related = e && e.relatedTarget;
    const view = related && graph.findViewByElem(related);
    if (view && view.cell === edge) return; // onto its own button
    if (graph.getCellById(edge.id) && edge.hasTools()) edge.removeTools(UI);
  });

  // ---- Palette: drag a node type onto the canvas -----------------------------------------
  const nodeIds = () => graph.getNodes().map((n) => n.id);

  /** The config names taken by nodes of this type (inputs and outputs are named). */
  function usedNames(type) {
    return new Set(
      graph.getNodes().filter((n) => (n.getData() || {}).type === type).map((n) => ((n.getData() || {}).config || {}).name),
    );
  }

  function newNodeDoc(type, at) {
    const palette = DATA.palette[type] || { config: {}, ports: { inputs: [], outputs: [] } };
    const id = nextId(type, nodeIds());
    const config = JSON.parse(JSON.stringify(palette.config || {}));
    if ("name" in config) config.name = uniqueName(id, usedNames(type));
    portCache.set(portKey(type, config), palette.ports);
    return { id, type, config, position: at || { x: 0, y: 0 } };
  }

  document.querySelectorAll("[data-palette-type]").forEach((item) => {
    // The drag starts once the mouse has moved a little: a plain click stays a click.
    item.addEventListener("mousedown", (down) => {
      if (readOnly || down.button !== 0) return;
      down.preventDefault();
      dragged = false;
      const move = (e) => {
        if (Math.hypot(e.clientX - down.clientX, e.clientY - down.clientY) < 4) return;
        stop();
        dragged = true;
        dnd.start(graph.createNode(meta(newNodeDoc(item.dataset.paletteType), [])), e);
      };
      const stop = () => {
        document.removeEventListener("mousemove", move);
        document.removeEventListener("mouseup", stop);
      };
      document.addEventListener("mousemove", move);
      document.addEventListener("mouseup", stop);
    });
  });
  let dragged = false;
  // A click, Enter or the search box adds at a free spot near the middle (palette.js); the
  // click that ends a drag does not.
  const palette = document.querySelector('[data-testid="palette"]');
  mountPalette(palette, { add: (type) => (dragged ? null : addAtCentre(type)), isReadOnly: () => readOnly });
  if (palette) palette.addEventListener("keydown", () => { dragged = false; }, true);

  /** Adds a node of `type` near the middle of the view, clear of the others; returns it. */
  function addAtCentre(type) {
    if (readOnly) return null;
    const area = graph.getGraphArea();
    const doc = newNodeDoc(type);
    const size = { width: W, height: meta(doc, []).height };
    doc.position = freeSpot(graph.getNodes().map((n) => n.getBBox()), area.center, size, undefined, area);
    pendingDrop = doc.id;
    return graph.addNode(meta(doc, []));
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
    const doc = levelJSON();
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
      const id = nextId(n.type, nodeIds());
      rename.set(n.id, id);
      const config = JSON.parse(JSON.stringify(n.config || {}));
      if ((n.type === "input" || n.type === "output") && typeof config.name === "string") {
        config.name = uniqueName(config.name, usedNames(n.type));
      }
      const at = n.position || { x: 0, y: 0 };
      const doc = { ...n, id, config, position: { x: at.x + 30 * pasteCount, y: at.y + 30 * pasteCount } };
      nodes.push(graph.addNode(meta(doc, [])));
    }
    const edges = clipboard.edges.map((e) => ({ ...e, source: rename.get(e.source), target: rename.get(e.target) }));
    for (const e of edges) graph.addEdge(edgeMeta(e));
    graph.stopBatch("paste");
    nodes.forEach((n) => requestPorts(n));
    selection.clean();
    selection.select(nodes);
  }

  // While undo or redo replays history, a loose edge it removes is no wire let go.
  let replaying = false;
  function replay(step) {
    replaying = true;
    try {
      step();
    } finally {
      replaying = false;
    }
  }

  function undo() {
    if (!readOnly && history.canUndo()) replay(() => history.undo());
  }

  function redo() {
    if (!readOnly && history.canRedo()) replay(() => history.redo());
  }

  function autoLayout() {
    if (readOnly) return Promise.resolve();
    const sizes = {};
    for (const n of graph.getNodes()) sizes[n.id] = n.getSize();
    return api("POST", DATA.urls.layout, { graph: levelJSON(), sizes }).then(({ status, body }) => {
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
      // Framed at a readable zoom (its start when it is too big for that): Fit still
      // shows everything however small, when asked for.
      fit(null);
    });
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
    } else if (!mod && (key === "b" || e.key === "F9")) {
      e.preventDefault();
      toggleSelectedBreakpoints();
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
  on("add-note", () => notes.addNote());
  on("group", () => notes.groupSelection());
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

  // ---- Read-only -------------------------------------------------------------------------
  function setReadOnly(value) {
    readOnly = Boolean(value) || !DATA.editable;
    document.body.classList.toggle("ed-readonly", readOnly);
    if (nameInput) nameInput.readOnly = readOnly;
    for (const id of ["save", "layout", "undo", "redo", "add-note", "group"]) {
      const b = $(`[data-testid="${id}"]`);
      if (b) b.disabled = readOnly;
    }
    document.querySelectorAll("[data-palette-type]").forEach((el) => el.setAttribute("aria-disabled", String(readOnly)));
    if (panel.nodeId) {
      const node = graph.getCellById(panel.nodeId);
      if (node) panel.open(node);
    }
  }

  // A version diff's mark on a node (versions.js): "added", "changed", "removed" or null.
  function markNode(nodeId, kind) {
    if (kind) diffMarks.set(nodeId, kind);
    else diffMarks.delete(nodeId);
    run.touch(nodeId);
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

  const canvas = {
    graph,
    ready,
    documentJSON,
    load,
    setReadOnly,
    isReadOnly: () => readOnly,
    setStatus: top((id, status) => run.setStatus(id, status)),
    appendText: top((id, text) => run.appendText(id, text)),
    setText: top((id, text) => run.setText(id, text)),
    setProgress: top((id, done, total) => run.setProgress(id, done, total)),
    setIteration: top((id, n) => run.setIteration(id, n)),
    setNodeBadges: top((id, badges) => run.setNodeBadges(id, badges)),
    setError: top((id, error) => {
      run.setError(id, error);
      syncForm();
    }),
    paintRunState: top((states, carried) => run.paint(states, carried)),
    markEdges: top((id, port) => run.markEdges(id, port)),
    markNode,
    resetRunState: top(() => run.reset()),
    showProblems,
    clearProblems,
    showWarnings,
    isDirty: () => checkDirty(),
    pendingSave: () => saving,
    save,
    onNodeClick: (callback) => clickCallbacks.push(callback),
    breakpoints: breakpointList,
    toggleBreakpoint,
    focusNode,
    renameNode,
    renamePort,
    autoLayout,
    undo,
    redo,
    drill: {
      open: (mapId) => drill.open(mapId),
      close: (depth) => drill.close(depth),
      path: () => drill.path(),
    },
    get version() {
      return version;
    },
  };

  const found = drafts.read(version);
  watchForms(document.getElementById("node-panel"), (id) => (run.get(id) || {}).error || "");
  load(DATA.doc, { readOnly, warnings: DATA.warnings, problems: DATA.problems });
  if (DATA.editable) drafts.restore(found, { load, checkDirty, get version() { return version; } }, DATA.doc);
  performance.mark("switchyard:canvas-loaded");
  const finish = () => {
    performance.mark("switchyard:canvas-ready");
    canvas.readyAt = performance.now();
    document.documentElement.dataset.canvas = "ready";
    resolveReady(canvas);
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
  return canvas;
}

performance.mark("switchyard:canvas-start");
const dataElement = document.getElementById("editor-data");

/** The page's canvas (see above), or null on a page without one. */
export const canvas = window.X6 && dataElement ? createCanvas(window.X6, JSON.parse(dataElement.textContent)) : null;

if (canvas) {
  window.Switchyard = window.Switchyard || {};
  window.Switchyard.canvas = canvas;
}
