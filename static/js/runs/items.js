/* items.js — one item of a map, as its inner flow's run state: folded from the map's
   node_item events (graphs/events.py: each carries `item`, `event`, the item's own event
   type, and `inner`, the item's node). Only a map's first item_events items send them.

   Pure: no DOM (items.test.js). canvas/drill.js paints the result on a drilled-in map. */

const ENDED = { succeeded: "done", failed: "failed", cancelled: "cancelled" };

/** The item indices of map `mapId` that sent events, in order. */
export function itemIndices(events, mapId) {
  const seen = new Set();
  for (const e of events) {
    if (e.type === "node_item" && e.node === mapId && Number.isInteger(e.item)) seen.add(e.item);
  }
  return [...seen].sort((a, b) => a - b);
}

/** Item `index` of map `mapId`: [[innerNodeId, {status, text}]] for each inner node it ran. */
export function itemStates(events, mapId, index) {
  const nodes = new Map();
  let ended = null;
  for (const e of events) {
    if (e.type !== "node_item" || e.node !== mapId || e.item !== index) continue;
    if (e.event === "run_finished") {
      ended = ENDED[e.status] || "failed";
      continue;
    }
    if (typeof e.inner !== "string") continue;
    let s = nodes.get(e.inner);
    if (!s) nodes.set(e.inner, (s = { status: "running", text: "" }));
    if (e.event === "node_started") {
      s.status = "running";
      s.text = "";
    } else if (e.event === "node_delta") {
      s.text += String(e.text || "");
    } else if (e.event === "node_finished") {
      s.status = "done";
    } else if (e.event === "node_failed") {
      s.status = "failed";
      if (e.error) s.text = String(e.error);
    }
  }
  // An item that ended with nodes still open: they were stopped with it.
  if (ended) {
    for (const s of nodes.values()) if (s.status === "running") s.status = ended === "done" ? "done" : "cancelled";
  }
  return [...nodes];
}
