/* drafts.js — unsaved work kept in this browser: localStorage under
   "switchyard:draft:<flowId>:<baseVersion>" as {doc, savedAt}. Storage may be full or
   disabled: then nothing is kept and nothing fails. */
import { banner, clearBanner } from "./banners.js";

export class Drafts {
  constructor(flowId) {
    this.prefix = `switchyard:draft:${flowId}:`;
  }

  key(version) {
    return this.prefix + version;
  }

  /** Keep the document as the draft made on `version`. */
  keep(version, doc) {
    try {
      localStorage.setItem(this.key(version), JSON.stringify({ doc, savedAt: Date.now() }));
    } catch (err) {
      /* storage full or disabled */
    }
  }

  drop(version) {
    try {
      localStorage.removeItem(this.key(version));
    } catch (err) {
      /* storage disabled */
    }
  }

  /** The draft made on `version` ({doc, savedAt} or null), and the keys of drafts made on
      other versions. Read before the first load: a clean load drops its version's draft. */
  read(version) {
    let draft = null;
    const others = [];
    try {
      draft = JSON.parse(localStorage.getItem(this.key(version)) || "null");
      for (let i = 0; i < localStorage.length; i++) {
        const key = localStorage.key(i);
        if (key && key.startsWith(this.prefix) && key !== this.key(version)) others.push(key);
      }
    } catch (err) {
      /* storage disabled */
    }
    return { draft, others };
  }

  /**
   * Offer what read() found: the draft of this version is loaded at once (with a banner to
   * discard it); a draft of an older version waits behind a banner to restore it.
   * canvas: {load(doc, options), checkDirty(), version}; serverDoc: the saved document.
   */
  restore({ draft, others }, canvas, serverDoc) {
    if (draft && draft.doc) {
      canvas.load(draft.doc, { keepSaved: true });
      const when = new Date(draft.savedAt || Date.now()).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      banner("draft", `Restored your unsaved changes from ${when}.`, [
        ["Discard them", () => { localStorage.removeItem(this.key(canvas.version)); canvas.load(serverDoc); clearBanner("draft"); }],
      ], "info");
    } else if (others.length) {
      const versionOf = (k) => Number(k.slice(this.prefix.length)) || 0;
      const key = others.sort((a, b) => versionOf(a) - versionOf(b)).pop();
      const base = key.slice(this.prefix.length);
      banner("old-draft", `You have unsaved changes made on version ${base}; the flow is now at version ${canvas.version}.`, [
        ["Restore them", () => {
          const old = JSON.parse(localStorage.getItem(key) || "null");
          localStorage.removeItem(key);
          if (old && old.doc) canvas.load(old.doc, { keepSaved: true });
          canvas.checkDirty();
          clearBanner("old-draft");
        }],
        ["Discard", () => { others.forEach((k) => localStorage.removeItem(k)); clearBanner("old-draft"); }],
      ], "warn");
    }
  }
}
