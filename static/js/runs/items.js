/* items.js — one item of a map, as its inner flow's run state: folded from the map's
   node_item events (graphs/events.py: each carries `item`, `event`, the item's own event
   type, and `inner`, the item's node). Only a map's first item_events items send them.

   A map inside an item's flow sends its own items' events nested in that item's: event
   `node_item`, `inner` its map, `nested` the inner item's event (nesting again deeper).
   `outer` names the levels above a map: [[mapId, item], ...] from the flow's own map
   down, `mapId` then being a map of the last one's inner flow.

   Pure: no DOM (items.test.js). canvas/drill.js paints the result on a drilled-in map. */

const ENDED = { succeeded: "done", failed: "failed", cancelled: "cancelled" };

/** The item event of map `mapId` (below the `outer` levels) that `e` carries, or null. */
export function itemEvent(e, mapId, outer = []) {
  if (!e || e.type !== "node_item" || e.node !== (outer.length ? outer[0][0] : mapId)) return null;
  let cur = e;
  for (let k = 0; k < outer.length; k++) {
    const next = k + 1 < outer.length ? outer[k + 1][0] : mapId;
    if (cur.item !== outer[k][1] || cur.event !== "node_item" || cur.inner !== next) return null;
    cur = cur.nested;
    if (!cur || typeof cur !== "object") return null;
  }
  return cur;
}

/** The item indices of map `mapId` that sent events, in order. */
export function itemIndices(events, mapId, outer = []) {
  const seen = new Set();
  for (const e of events) {
    const own = itemEvent(e, mapId, outer);
    if (own && Number.isInteger(own.item)) seen.add(own.item);
  }
  return [...seen].sort((a, b) => a - b);
}

/** Item `index` of map `mapId`: [[innerNodeId, {status, text}]] for each inner node it ran. */
export function itemStates(events, mapId, index, outer = []) {
  const nodes = new Map();
  let ended = null;
  for (const raw of events) {
    const e = itemEvent(raw, mapId, outer);
    if (!e || e.item !== index) continue;
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
