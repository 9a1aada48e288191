/* keys.js — node keys on the canvas. A node's key is its document id (graphs/keys.py): the
   name edges, merge ports and prompts use. The node form (the server) decides a node's
   key from its label or what is typed; renaming asks POST /api/editor/rename for the
   rewritten document and applies the difference here as one batch, so one undo takes the
   whole rename back. The pure helpers are tested in keys.test.js. */

const NAMED = new Set(["input", "output"]);

/** What a node is called on the canvas and in lists: its label, else (an input or an
    output) the run input or output it is, else its key. */
export function displayName(node) {
  const config = node.config || {};
  if (node.label) return node.label;
  if (NAMED.has(node.type) && typeof config.name === "string" && config.name) return config.name;
  return node.id;
}

/** "Label (key)" when they differ, for problem lists; else the one name. */
export function nameWithKey(node) {
  const name = displayName(node);
  return name === node.id ? name : `${name} (${node.id})`;
}

const edgeText = (e) => JSON.stringify(Object.keys(e).sort().filter((k) => k !== "key").map((k) => [k, e[k]]));
const nodeText = (n) => JSON.stringify([n.type, n.label || "", n.config || {}]);

/**
 * What turns document `before` into `after`: nodes to remove (ids), add (documents) and
 * update (documents whose type, label or config changed), edges to remove and add (edge
 * documents, compared without their networkx `key`).
 */
export function documentChanges(before, after) {
  const old = new Map((before.nodes || []).map((n) => [n.id, n]));
  const now = new Map((after.nodes || []).map((n) => [n.id, n]));
  const removeNodes = [...old.keys()].filter((id) => !now.has(id));
  const addNodes = [...now.values()].filter((n) => !old.has(n.id));
  const updateNodes = [...now.values()].filter((n) => old.has(n.id) && nodeText(old.get(n.id)) !== nodeText(n));
  const count = (edges) => {
    const m = new Map();
    for (const e of edges || []) m.set(edgeText(e), (m.get(edgeText(e)) || 0) + 1);
    return m;
  };
  const oldEdges = count(before.edges);
  const newEdges = count(after.edges);
  const removeEdges = [];
  const addEdges = [];
  for (const e of before.edges || []) {
    const t = edgeText(e);
    if ((newEdges.get(t) || 0) < (oldEdges.get(t) || 0)) {
      removeEdges.push(e);
      oldEdges.set(t, oldEdges.get(t) - 1);
    }
  }
  const seen = count(before.edges);
  for (const e of after.edges || []) {
    const t = edgeText(e);
    if ((seen.get(t) || 0) > 0) seen.set(t, seen.get(t) - 1);
    else addEdges.push(e);
  }
  return { removeNodes, addNodes, updateNodes, removeEdges, addEdges };
}

/**
 * Apply `changes` (documentChanges) to an X6 graph in one history batch. `cells` gives
 * {nodeMeta(doc, edges), edgeMeta(edge), edgeDoc(x6Edge), edges} (the new document's edges).
 * Returns the nodes added or changed, whose ports the caller brings up to date.
 */
export function applyChanges(graph, changes, cells) {
  const touched = [];
  graph.startBatch("rename");
  try {
    for (const e of changes.removeEdges) {
      const want = edgeText(e);
      const edge = graph.getEdges().find((x) => {
        const d = cells.edgeDoc(x);
        return d && edgeText(d) === want;
      });
      if (edge) graph.removeCell(edge);
    }
    for (const id of changes.removeNodes) graph.removeCell(id);
    for (const n of changes.addNodes) touched.push(graph.addNode(cells.nodeMeta(n, cells.edges)));
    for (const n of changes.updateNodes) {
      const node = graph.getCellById(n.id);
      if (!node) continue;
      const data = node.getData() || {};
      node.setData({ ...data, type: n.type, config: n.config || {}, label: n.label || "" }, { overwrite: true, source: "rename" });
      touched.push(node);
    }
    for (const e of changes.addEdges) graph.addEdge(cells.edgeMeta(e));
  } finally {
    graph.stopBatch("rename");
  }
  return touched;
}
