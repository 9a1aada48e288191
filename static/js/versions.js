/*
 * versions.js — the version diff page (templates/flows/versions_diff.html).
 *
 * The server works out the diff and renders the list; canvas/editor.js draws the newer version
 * with the removed nodes and edges put back. This file only marks them on the canvas,
 * from #version-marks: {nodes: {id: "added" | "changed" | "removed"},
 * edges: [{source, source_port, target, target_port, kind}]}, and links the list's
 * names to the canvas (click a name: the node is shown; click a node: its entry is).
 */
import { canvas } from "./canvas/editor.js";

function start() {
  const marksElement = document.getElementById("version-marks");
  if (!marksElement || !canvas) return;
  const MARKS = JSON.parse(marksElement.textContent);
  const edgeMarks = new Map(); // X6 edge id -> kind

  function edgeClass(kind) {
    return `sy-edge-line diff-${kind}`;
  }

  function markEdges() {
    const taken = new Set();
    for (const mark of MARKS.edges || []) {
      // Parallel edges with the same ends and ports are one edge each: take the next unmarked.
      const edge = canvas.graph.getEdges().find(
        (e) =>
          !taken.has(e.id) &&
          e.getSourceCellId() === mark.source &&
          e.getTargetCellId() === mark.target &&
          e.getSourcePortId() === `out:${mark.source_port}` &&
          e.getTargetPortId() === `in:${mark.target_port}`,
      );
      if (!edge) continue;
      taken.add(edge.id);
      edgeMarks.set(edge.id, mark.kind);
      edge.attr("line/class", edgeClass(mark.kind), { derived: true });
    }
  }

  canvas.ready.then(() => {
    for (const [id, kind] of Object.entries(MARKS.nodes || {})) canvas.markNode(id, kind);
    markEdges();
    // The canvas puts an edge's plain class back when it is unselected; the mark comes back too.
    canvas.graph.on("edge:unselected", ({ edge }) => {
      const kind = edgeMarks.get(edge.id);
      if (kind && canvas.graph.getCellById(edge.id)) edge.attr("line/class", edgeClass(kind), { derived: true });
    });
    canvas.onNodeClick((id) => {
      const entry = [...document.querySelectorAll("[data-diff-node]")].find((el) => el.dataset.diffNode === id);
      if (!entry) return;
      entry.scrollIntoView({ block: "nearest", behavior: "smooth" });
      entry.classList.add("is-focused");
      setTimeout(() => entry.classList.remove("is-focused"), 1200);
    });
  });

  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("[data-focus-node]");
    if (button) canvas.focusNode(button.dataset.focusNode);
  });
}

start();
