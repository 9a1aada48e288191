/*
 * canvas/keyboard.js — the canvas without a mouse. The canvas element takes focus (Tab
 * from the palette); while it has it:
 *
 *   Tab / Shift+Tab   the next / previous node, left to right (then top to bottom); past
 *                     the last (first) one focus leaves the canvas as usual
 *   Arrow keys        move the focused node 10 px (with Shift 50 px)
 *   Enter             on a node: go to its ports; on an output port: pick it up to wire;
 *                     on an input port with an output picked up: connect them
 *   Arrow keys        among ports: the next / previous port of the node
 *   Escape            ports: back to the node; else drop what was picked up
 *   Delete            (editor.js) deletes the focused node, Ctrl+Z brings it back
 *
 * The focused node is the selected one (so the node form and Delete follow it); the
 * focused port gets class "kb-port". What happens is said in an aria-live region
 * ([data-testid="canvas-announcer"]). Edits go through the graph like a mouse's, so undo
 * takes them back.
 */
import { edgeMeta } from "./document.js";
import { portName } from "./shapes.js";

const STEP = 10;
const BIG_STEP = 50;

const label = (node) => ((node.getData() || {}).label || node.id);
const portText = (portId) => `${portId.startsWith("out:") ? "output" : "input"} ${portName(portId) === "+" ? "new port" : portName(portId)}`;

/**
 * Make the canvas keyboard-operable. `options`: selection (X6 Selection), isReadOnly(),
 * connectionAllowed({edge, sourceCell, targetCell, sourcePort, targetPort}), isFlowNode(node)
 * (false for a note or a group: Tab reaches and arrows move them too, but their Enter is
 * notes.js's).
 * Returns {announce(text)}.
 */
export function attachKeyboard(graph, container, options) {
  const { selection, isReadOnly, connectionAllowed } = options;
  const isFlowNode = options.isFlowNode || (() => true);
  container.tabIndex = 0;
  container.setAttribute("role", "application");
  container.setAttribute("aria-roledescription", "flow canvas");
  container.setAttribute(
    "aria-label",
    "Flow canvas. Tab moves between nodes, arrow keys move a node, Enter goes to its ports; " +
      "Enter on an output port picks it up and Enter on an input port connects it; Delete removes.",
  );
  const live = document.createElement("div");
  live.className = "visually-hidden";
  live.setAttribute("aria-live", "polite");
  live.setAttribute("role", "status");
  live.dataset.testid = "canvas-announcer";
  container.insertAdjacentElement("afterend", live);

  let current = null; // node id with keyboard focus
  let port = null; // port id within it, while among its ports
  let picked = null; // {node, port}: an output picked up to wire

  function announce(text) {
    // A fresh text node each time: the same message twice is still read out.
    live.textContent = "";
    requestAnimationFrame(() => {
      live.textContent = text;
    });
  }

  function nodes() {
    return graph
      .getNodes()
      .filter((node) => node.isVisible())
      .sort((a, b) => {
        const p = a.getPosition();
        const q = b.getPosition();
        return p.x - q.x || p.y - q.y || (a.id < b.id ? -1 : 1);
      });
  }

  function markPort(on) {
    const node = current && graph.getCellById(current);
    const view = node && graph.findViewByCell(node);
    if (!view || !port) return;
    const el = view.container.querySelector(`[port="${CSS.escape(port)}"]`);
    if (el) el.classList.toggle("kb-port", on);
  }

  function inView(node) {
    const box = graph.localToGraph(node.getBBox());
    return box.x >= 0 && box.y >= 0 && box.x + box.width <= container.clientWidth && box.y + box.height <= container.clientHeight;
  }

  function focusNode(node) {
    markPort(false);
    port = null;
    current = node.id;
    selection.clean();
    selection.select(node);
    if (!inView(node)) graph.centerCell(node);
    const data = node.getData() || {};
    if (!isFlowNode(node)) {
      const what = data.kind === "group" ? `Group ${data.title || ""}${data.collapsed ? ", collapsed" : ""}` : `Note: ${String(data.text || "").slice(0, 80)}`;
      announce(`${what}. Enter edits it.`);
      return;
    }
    const note = picked ? ` Holding ${portText(picked.port)} of ${picked.label}: Enter to choose an input.` : "";
    announce(`${label(node)}, ${data.type} node.${note}`);
  }

  function ports(node) {
    const all = node.getPorts().map((p) => p.id);
    const outs = all.filter((id) => id.startsWith("out:"));
    const ins = all.filter((id) => id.startsWith("in:"));
    // With an output in hand, the inputs come first: that is where it goes.
    return picked ? [...ins, ...outs] : [...outs, ...ins];
  }

  function focusPort(node, id) {
    markPort(false);
    port = id;
    markPort(true);
    announce(`${portText(id)} of ${label(node)}.`);
  }

  function connect(target, targetPort) {
    const source = graph.getCellById(picked.node);
    if (!source) {
      picked = null;
      announce("The node picked up is gone.");
      return;
    }
    const args = { edge: null, sourceCell: source, targetCell: target, sourcePort: picked.port, targetPort };
    if (!connectionAllowed(args)) {
      announce(`Cannot connect ${portText(picked.port)} of ${picked.label} to ${portText(targetPort)} of ${label(target)}.`);
      return;
    }
    let name = portName(targetPort);
    if (name === "+") {
      // A merge's "+" becomes a port named after the source, as when wired by mouse.
      const taken = new Set(target.getPorts().map((p) => p.id));
      const stem = String(source.id).replace(/[^A-Za-z0-9_]/g, "_").replace(/^(?=\d)/, "_") || "value";
      name = stem;
      for (let i = 2; taken.has(`in:${name}`); i++) name = `${stem}_${i}`;
    }
    graph.addEdge(edgeMeta({ source: source.id, target: target.id, source_port: portName(picked.port), target_port: name }));
    announce(`Connected ${portText(picked.port)} of ${picked.label} to input ${name} of ${label(target)}.`);
    picked = null;
    markPort(false);
    port = null;
  }

  function move(node, dx, dy) {
    const at = node.getPosition();
    node.position(at.x + dx, at.y + dy);
    if (!inView(node)) graph.centerCell(node);
    const now = node.getPosition();
    announce(`${label(node)} moved to ${Math.round(now.x)}, ${Math.round(now.y)}.`);
  }

  container.addEventListener("focus", (e) => {
    // Focus from a click (not :focus-visible) selects nothing: the mouse says what it means.
    if (e.target !== container || !container.matches(":focus-visible")) return;
    const node = current && graph.getCellById(current);
    const list = nodes();
    if (node) focusNode(node);
    else if (list.length) focusNode(list[0]);
    else announce("The canvas is empty: add a node from the palette.");
  });

  container.addEventListener("blur", () => markPort(false));

  container.addEventListener("keydown", (e) => {
    if (e.target !== container || e.ctrlKey || e.metaKey || e.altKey) return;
    const node = current && graph.getCellById(current);
    const consume = () => {
      e.preventDefault();
      e.stopPropagation();
    };
    if (e.key === "Tab") {
      const list = nodes();
      const at = node ? list.indexOf(node) : -1;
      const next = at + (e.shiftKey ? -1 : 1);
      if (at === -1 && list.length) {
        consume();
        focusNode(list[e.shiftKey ? list.length - 1 : 0]);
      } else if (next >= 0 && next < list.length) {
        consume();
        focusNode(list[next]);
      }
      // Else: past either end, Tab leaves the canvas.
      return;
    }
    if (!node) return;
    const arrows = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (e.key in arrows) {
      // Read-only, arrows are the page's (the replay bar seeks with them).
      if (!port && isReadOnly()) return;
      consume();
      if (port) {
        const list = ports(node);
        const step = e.key === "ArrowDown" || e.key === "ArrowRight" ? 1 : -1;
        focusPort(node, list[(list.indexOf(port) + step + list.length) % list.length]);
      } else {
        const [dx, dy] = arrows[e.key];
        const by = e.shiftKey ? BIG_STEP : STEP;
        move(node, dx * by, dy * by);
      }
    } else if (e.key === "Enter") {
      if (!isFlowNode(node)) return; // notes.js edits it
      consume();
      if (!port) {
        const list = ports(node);
        if (list.length) focusPort(node, list[0]);
        else announce(`${label(node)} has no ports.`);
      } else if (port.startsWith("out:")) {
        if (isReadOnly()) return;
        picked = { node: node.id, port, label: label(node) };
        announce(`Picked up ${portText(port)} of ${label(node)}. Tab to another node, Enter, choose an input, Enter.`);
      } else if (picked) {
        connect(node, port);
      } else {
        announce(`${portText(port)} of ${label(node)}: pick up an output first.`);
      }
    } else if (e.key === "Escape" && (port || picked)) {
      // Else Escape is the editor's (close the help, clear the selection).
      consume();
      if (port) {
        markPort(false);
        port = null;
        announce(`${label(node)}.`);
      } else if (picked) {
        picked = null;
        announce("Nothing picked up.");
      }
    } else if ((e.key === "Delete" || e.key === "Backspace") && !isReadOnly()) {
      // editor.js removes the selection (this node); the announcement is said here.
      markPort(false);
      port = null;
      current = null;
      announce(`${label(node)} deleted.`);
    }
  });

  graph.on("cell:removed", ({ cell }) => {
    if (cell.id === current) {
      current = null;
      port = null;
    }
    if (picked && cell.id === picked.node) picked = null;
  });

  return { announce };
}
