/* breakpoints.js — the nodes a run started from this editor pauses before.

   They belong to this browser's session of the flow, never to the flow document: kept in
   localStorage under "switchyard:breakpoints:<flowId>" as a list of node ids, so saving,
   undo, collaborators and the flow's versions never see them. The run form sends them
   (runs/view.js); the server applies them only to runs from the editor. Storage may be
   full or disabled: then they last as long as the page. */

export const MAX_BREAKPOINTS = 200; // webapp.runs.breakpoints.MAX_BREAKPOINTS
const NODE_ID = /^[A-Za-z_][A-Za-z0-9_-]{0,99}$/; // graphs.document.IDENTIFIER

/** The node ids a stored value names: identifiers only, each once, at most the maximum. */
export function parseStored(text) {
  let value;
  try {
    value = JSON.parse(text || "[]");
  } catch (err) {
    return [];
  }
  if (!Array.isArray(value)) return [];
  const ids = [...new Set(value.filter((id) => typeof id === "string" && NODE_ID.test(id)))];
  return ids.slice(0, MAX_BREAKPOINTS);
}

export class Breakpoints {
  /** storage: localStorage, or anything with getItem/setItem/removeItem (tests). */
  constructor(flowId, storage) {
    this.key = `switchyard:breakpoints:${flowId}`;
    this.storage = storage || null;
    let stored = null;
    try {
      stored = this.storage ? this.storage.getItem(this.key) : null;
    } catch (err) {
      /* storage disabled */
    }
    this.ids = new Set(parseStored(stored));
  }

  has(id) {
    return this.ids.has(id);
  }

  /** Sorted, as the server keeps them. */
  list() {
    return [...this.ids].sort();
  }

  /** Mark or unmark a node; true when it is marked now. */
  toggle(id) {
    if (!NODE_ID.test(String(id))) return false;
    if (this.ids.has(id)) this.ids.delete(id);
    else if (this.ids.size < MAX_BREAKPOINTS) this.ids.add(id);
    this.save();
    return this.ids.has(id);
  }

  /** Forget marks on nodes the flow no longer has; the ids whose mark went. */
  keepOnly(nodeIds) {
    const present = new Set(nodeIds);
    const gone = [...this.ids].filter((id) => !present.has(id));
    if (!gone.length) return [];
    for (const id of gone) this.ids.delete(id);
    this.save();
    return gone;
  }

  save() {
    if (!this.storage) return;
    try {
      if (this.ids.size) this.storage.setItem(this.key, JSON.stringify(this.list()));
      else this.storage.removeItem(this.key);
    } catch (err) {
      /* storage full or disabled */
    }
  }
}
