/*
 * canvas/notes.js — sticky notes and groups on the canvas (the document's "notes" and
 * "groups", README "The flow document"; checked by graphs/notes.py; the engine never reads
 * them). Both are X6 nodes whose data has `kind` "note" or "group"; editor.js leaves them
 * out of everything that concerns flow nodes (ports, the node form, run state).
 *
 *   a note     plain text (an SVG text node: never read as HTML), wrapped to its size;
 *              double-click (or Enter with it selected) edits it in place
 *   a group    a titled frame drawn behind the nodes it holds; dragging it moves them; its
 *              ▾ button (or Enter with it selected) collapses it: its nodes and their wires
 *              are hidden, the title bar stays
 *   "c"        with a note or group selected: its next colour
 *
 * Every change is an ordinary X6 change, so undo and redo take it back; what follows from
 * one (members moving with their group, hidden when it is collapsed) is derived, not
 * recorded, and redone from the group's own state.
 */

export const COLORS = ["yellow", "blue", "green", "pink", "purple", "grey"];
const MAX_TEXT = 10000;
const MAX_TITLE = 200;
const HEAD = 28;
const PAD = 24;

/** Whether an X6 node is a note or a group rather than a node of the flow. */
export function isAnnotation(node) {
  const data = (node && node.getData && node.getData()) || {};
  return data.kind === "note" || data.kind === "group";
}

const colourOf = (c) => (COLORS.includes(c) ? c : COLORS[0]);

/** The X6 cell for a document note. */
export function noteMeta(n) {
  const at = n.position || { x: 0, y: 0 };
  const size = n.size || { width: 220, height: 120 };
  const color = colourOf(n.color);
  const text = String(n.text || "");
  return {
    id: n.id,
    shape: "sy-note",
    x: at.x,
    y: at.y,
    width: size.width,
    height: size.height,
    zIndex: 0,
    data: { kind: "note", text, color },
    attrs: {
      body: { class: `sy-note-body c-${color}` },
      label: { text, textWrap: { width: -20, height: -20, ellipsis: true } },
    },
  };
}

/** The X6 cell for a document group. */
export function groupMeta(g) {
  const at = g.position || { x: 0, y: 0 };
  const size = g.size || { width: 400, height: 240 };
  const color = colourOf(g.color);
  const collapsed = Boolean(g.collapsed);
  return {
    id: g.id,
    shape: "sy-group",
    x: at.x,
    y: at.y,
    width: size.width,
    height: size.height,
    zIndex: -1,
    data: { kind: "group", title: String(g.title || ""), color, collapsed, nodes: [...(g.nodes || [])] },
    attrs: groupAttrs(String(g.title || ""), color, collapsed),
  };
}

function groupAttrs(title, color, collapsed) {
  return {
    body: { class: `sy-group-body c-${color}${collapsed ? " is-collapsed" : ""}` },
    head: { class: `sy-group-head c-${color}` },
    title: { text: title.length > 60 ? `${title.slice(0, 59)}…` : title || "Group" },
    toggle: { text: collapsed ? "▸" : "▾" },
  };
}

/** The document's notes and groups from the graph's cells: {notes, groups}. */
export function annotationsOf(nodes) {
  const notes = [];
  const groups = [];
  for (const node of nodes) {
    const data = node.getData() || {};
    const at = node.getPosition();
    const size = node.getSize();
    const box = {
      id: node.id,
      color: data.color,
      position: { x: Math.round(at.x), y: Math.round(at.y) },
      size: { width: Math.round(size.width), height: Math.round(size.height) },
    };
    if (data.kind === "note") notes.push({ ...box, text: data.text || "" });
    else if (data.kind === "group") {
      groups.push({ ...box, title: data.title || "", collapsed: Boolean(data.collapsed), nodes: [...(data.nodes || [])] });
    }
  }
  return { notes, groups };
}

/** The cells of a document's notes and groups. */
export function annotationCells(doc) {
  return [...(doc.groups || []).map(groupMeta), ...(doc.notes || []).map(noteMeta)];
}

export function registerAnnotationShapes(X6) {
  X6.Graph.registerNode(
    "sy-note",
    {
      inherit: "rect",
      markup: [
        { tagName: "rect", selector: "body" },
        { tagName: "text", selector: "label" },
      ],
      attrs: {
        body: { refWidth: "100%", refHeight: "100%", rx: 4 },
        label: { refX: 10, refY: 10, textAnchor: "start", textVerticalAnchor: "top", class: "sy-note-text" },
      },
    },
    true,
  );
  X6.Graph.registerNode(
    "sy-group",
    {
      inherit: "rect",
      markup: [
        { tagName: "rect", selector: "body" },
        { tagName: "rect", selector: "head" },
        { tagName: "text", selector: "title" },
        { tagName: "text", selector: "toggle" },
      ],
      attrs: {
        body: { refWidth: "100%", refHeight: "100%", rx: 8 },
        head: { refWidth: "100%", height: HEAD, rx: 8 },
        title: { refX: 30, refY: HEAD / 2, textAnchor: "start", textVerticalAnchor: "middle", class: "sy-group-title" },
        toggle: {
          refX: 10,
          refY: HEAD / 2,
          textAnchor: "start",
          textVerticalAnchor: "middle",
          class: "sy-group-toggle",
          event: "group:toggle",
          cursor: "pointer",
        },
      },
    },
    true,
  );
}

/**
 * Notes and groups on an editor's graph. `options`: selection, isReadOnly(), announce(text),
 * UI (the options that mark derived changes), nextFreeId(stem), centre() -> {x, y}.
 */
export function attachNotes(graph, container, options) {
  const { selection, isReadOnly, UI } = options;
  const announce = options.announce || (() => {});

  function membersOf(group) {
    return ((group.getData() || {}).nodes || []).map((id) => graph.getCellById(id)).filter(Boolean);
  }

  // Collapsed: its nodes and every wire touching them are hidden (derived from its data).
  function applyCollapse(group) {
    const data = group.getData() || {};
    group.setAttrs(groupAttrs(data.title || "", colourOf(data.color), Boolean(data.collapsed)), UI);
    const hidden = new Set();
    for (const g of graph.getNodes()) {
      const d = g.getData() || {};
      if (d.kind === "group" && d.collapsed) for (const id of d.nodes || []) hidden.add(id);
    }
    for (const member of membersOf(group)) {
      const show = !hidden.has(member.id);
      if (member.isVisible() !== show) member.setVisible(show, UI);
      for (const edge of graph.getConnectedEdges(member)) {
        const visible = !hidden.has(edge.getSourceCellId()) && !hidden.has(edge.getTargetCellId());
        if (edge.isVisible() !== visible) edge.setVisible(visible, UI);
      }
    }
  }

  function refresh(node) {
    const data = node.getData() || {};
    if (data.kind === "note") {
      node.setAttrs({ body: { class: `sy-note-body c-${colourOf(data.color)}` }, label: { text: data.text || "" } }, UI);
    } else if (data.kind === "group") {
      applyCollapse(node);
    }
    if (selection.isSelected(node)) node.attr("body/class", `${node.attr("body/class")} is-selected`, UI);
  }

  function freeId(stem) {
    const taken = new Set(graph.getCells().map((c) => c.id));
    let i = 1;
    while (taken.has(`${stem}${i}`)) i += 1;
    return `${stem}${i}`;
  }

  function addNote() {
    if (isReadOnly()) return null;
    const c = graph.getGraphArea().center;
    const note = graph.addNode(noteMeta({ id: freeId("note"), text: "", position: { x: Math.round(c.x - 110), y: Math.round(c.y - 60) } }));
    selection.clean();
    selection.select(note);
    announce("Note added.");
    edit(note);
    return note;
  }

  function groupSelection() {
    if (isReadOnly()) return null;
    const grouped = new Set();
    for (const g of graph.getNodes()) if ((g.getData() || {}).kind === "group") (g.getData().nodes || []).forEach((id) => grouped.add(id));
    const members = selection.getSelectedCells().filter((c) => c.isNode() && !isAnnotation(c) && !grouped.has(c.id));
    if (!members.length) {
      announce("Select some nodes that are in no group, then group them.");
      return null;
    }
    const boxes = members.map((m) => m.getBBox());
    const x = Math.min(...boxes.map((b) => b.x)) - PAD;
    const y = Math.min(...boxes.map((b) => b.y)) - PAD - HEAD;
    const right = Math.max(...boxes.map((b) => b.x + b.width)) + PAD;
    const bottom = Math.max(...boxes.map((b) => b.y + b.height)) + PAD + 16;
    const group = graph.addNode(
      groupMeta({ id: freeId("group"), title: "Group", position: { x, y }, size: { width: right - x, height: bottom - y }, nodes: members.map((m) => m.id) }),
    );
    selection.clean();
    selection.select(group);
    announce(`Grouped ${members.length} node${members.length === 1 ? "" : "s"}.`);
    edit(group);
    return group;
  }

  // Read-only too: a viewer of a run page may open a group its author left collapsed.
  function toggle(group) {
    const collapsed = !(group.getData() || {}).collapsed;
    group.setData({ collapsed });
    announce(`${(group.getData() || {}).title || "Group"} ${collapsed ? "collapsed" : "expanded"}.`);
  }

  function recolour(node) {
    if (isReadOnly()) return;
    const data = node.getData() || {};
    const color = COLORS[(COLORS.indexOf(colourOf(data.color)) + 1) % COLORS.length];
    node.setData({ color });
    announce(`Colour: ${color}.`);
  }

  // Editing in place: a text field over the note (or the group's title); Enter (Ctrl+Enter
  // in a note) or leaving it keeps the text, Escape drops the change.
  function edit(node) {
    if (isReadOnly() || !node) return;
    const data = node.getData() || {};
    const note = data.kind === "note";
    const field = document.createElement(note ? "textarea" : "input");
    field.className = "sy-note-editor";
    field.dataset.testid = note ? "note-editor" : "group-title-editor";
    field.setAttribute("aria-label", note ? "Note text" : "Group title");
    field.maxLength = note ? MAX_TEXT : MAX_TITLE;
    field.value = note ? data.text || "" : data.title || "";
    const box = graph.localToGraph(node.getBBox());
    Object.assign(field.style, {
      left: `${box.x}px`,
      top: `${box.y}px`,
      width: `${Math.max(box.width, 160)}px`,
      height: note ? `${Math.max(box.height, 60)}px` : `${HEAD}px`,
    });
    container.parentElement.appendChild(field);
    field.focus();
    let done = false;
    const finish = (keep) => {
      if (done) return;
      done = true;
      const value = field.value;
      field.remove();
      if (keep && graph.getCellById(node.id) && value !== (note ? data.text || "" : data.title || "")) {
        node.setData(note ? { text: value } : { title: value });
      }
      container.focus();
    };
    field.addEventListener("keydown", (e) => {
      e.stopPropagation();
      if (e.key === "Escape") finish(false);
      else if (e.key === "Enter" && (!note || e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        finish(true);
      }
    });
    field.addEventListener("blur", () => finish(true));
  }

  // Members follow their group. Not recorded: undo moves the group back and they follow.
  graph.on("node:change:position", ({ node, current, previous, options: opts }) => {
    if ((node.getData() || {}).kind !== "group" || !previous || !current) return;
    if (opts && opts.fromGroup) return;
    const dx = current.x - previous.x;
    const dy = current.y - previous.y;
    if (!dx && !dy) return;
    const moving = selection.isSelected(node);
    for (const member of membersOf(node)) {
      // A member selected with its group is already moved by the selection.
      if (moving && selection.isSelected(member)) continue;
      member.translate(dx, dy, { ...UI, fromGroup: true });
    }
  });

  graph.on("node:change:data", ({ node }) => {
    if (isAnnotation(node)) refresh(node);
  });
  graph.on("cell:added", ({ cell }) => {
    if (cell.isNode() && (cell.getData() || {}).kind === "group") applyCollapse(cell);
  });
  graph.on("cell:removed", ({ cell }) => {
    if (!cell.isNode()) return;
    const data = cell.getData() || {};
    if (data.kind === "group") {
      // Its nodes come back into view.
      for (const member of membersOf(cell)) member.setVisible(true, UI);
      for (const member of membersOf(cell)) for (const e of graph.getConnectedEdges(member)) e.setVisible(true, UI);
      return;
    }
    if (data.kind) return;
    // A deleted node leaves its group (in the same batch: undo puts it back in).
    for (const g of graph.getNodes()) {
      const d = g.getData() || {};
      if (d.kind === "group" && (d.nodes || []).includes(cell.id)) {
        // Overwrite: X6 merges arrays index by index, which would keep the removed id.
        g.setData({ ...d, nodes: d.nodes.filter((id) => id !== cell.id) }, { overwrite: true });
      }
    }
  });
  graph.on("node:selected", ({ node }) => {
    if (isAnnotation(node)) refresh(node);
  });
  graph.on("node:unselected", ({ node }) => {
    if (isAnnotation(node) && graph.getCellById(node.id)) refresh(node);
  });
  graph.on("group:toggle", ({ e, node }) => {
    if (e) e.stopPropagation();
    toggle(node);
  });
  graph.on("node:dblclick", ({ node }) => {
    if (isAnnotation(node)) edit(node);
  });

  // Keys for a selected note or group; the canvas's other keys stay editor.js's.
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const tag = e.target && e.target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    const cells = selection.getSelectedCells().filter((c) => c.isNode() && isAnnotation(c));
    if (cells.length !== 1) return;
    const [node] = cells;
    const group = (node.getData() || {}).kind === "group";
    if (e.key === "Enter" && e.shiftKey && group) {
      e.preventDefault();
      toggle(node);
    } else if (isReadOnly()) {
      // Nothing else to do with a note or group one cannot edit.
    } else if (e.key === "c") {
      recolour(node);
    } else if (e.key === "Enter") {
      e.preventDefault();
      edit(node);
    }
  });

  /** After a load: collapsed groups hide their nodes. */
  function afterLoad() {
    for (const node of graph.getNodes()) if ((node.getData() || {}).kind === "group") applyCollapse(node);
  }

  return { addNote, groupSelection, toggle, edit, afterLoad };
}
