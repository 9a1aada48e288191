/* panel.js — the node form beside the canvas (#node-panel): the server renders it
   (POST urls.nodeForm through htmx) and checks every edit; this file opens it for a node
   and hands each checked config back to the node. An edge's form (POST urls.edgeForm: a
   loop-back edge's `initial` and `append`) is placed and answered the same way. Edits typed in the form reach the node
   after a short debounce (the form's own hx-trigger); save() waits for them: flush().

   Levels. While a map's inner flow is drawn (drill.js) the canvas holds another level,
   whose node ids may repeat the level above's. A form belongs to the level it was opened
   at (data-level): its answers are applied to that level's node wherever the canvas now
   is (edges.applyAt), never to a node of the same id drawn now; and a form whose opening
   answer comes after the level changed is not placed. */
import { csrfToken } from "../lib/net.js";
import { attachCompletion } from "./complete.js";
import { mountSchemaTables } from "./schematable.js";

export class Panel {
  /** isReadOnly(): whether the form opens read-only and its answers are ignored. */
  constructor(graph, nodeFormUrl, isReadOnly, edges) {
    this.graph = graph;
    this.url = nodeFormUrl;
    this.isReadOnly = isReadOnly;
    // {url, documentJSON}: the edge form's URL and the flow as the canvas has it.
    this.edges = edges || {};
    this.edgeId = null; // the edge whose form is open
    this.element = document.getElementById("node-panel");
    this.placeholder = this.element ? this.element.innerHTML : "";
    this.nodeId = null; // the node whose form is open
    this.edits = 0; // input events in the form so far
    this.applied = 0; // the edits whose answer has come back
    this.waiters = [];
    this.openedLevel = "[]"; // the level of the form placed last (the flow's own, first)
    this.lastAt = new Map(); // level -> the form placed there last
    this.listen();
    attachCompletion(this.element, () => this.completionContext());
  }

  /** What `{{` completion offers from: the open node, the flow, the node's input ports. */
  completionContext() {
    const node = this.nodeId && this.graph.getCellById(this.nodeId);
    if (!node || !node.isNode() || !this.edges.documentJSON || this.isReadOnly()) return null;
    const ports = node
      .getPorts()
      .filter((p) => p.group === "in")
      .map((p) => String(p.id).replace(/^in:/, ""));
    return { nodeId: node.id, doc: this.edges.documentJSON(), ports };
  }

  /** The level the canvas draws: the path of maps drilled into ("[]": the flow itself). */
  level() {
    return JSON.stringify(this.edges.levelPath ? this.edges.levelPath() : []);
  }

  /** Headers of a request that places a form: its level, checked when it answers. */
  placing() {
    this.openedLevel = this.level();
    return { "X-CSRFToken": csrfToken(), "X-Switchyard-Level": this.openedLevel };
  }

  open(node) {
    if (!this.element || !window.htmx) return;
    const data = node.getData() || {};
    this.nodeId = node.id;
    this.edgeId = null;
    window.htmx.ajax("POST", this.url, {
      target: this.element,
      swap: "innerHTML",
      headers: this.placing(),
      values: {
        type: data.type,
        node_id: node.id,
        label: data.label || "",
        config: JSON.stringify(data.config || {}),
        readonly: this.isReadOnly() ? "1" : "0",
        // A key is unique in the flow: the server checks a typed one against these.
        taken: JSON.stringify(this.graph.getNodes().map((n) => n.id).filter((id) => id !== node.id)),
      },
    });
  }

  /** The open node changed elsewhere (undo, a rename, a teammate): show it as it now is,
      once the form's own edits still on their way have been applied, so none is lost. */
  reopen(node) {
    this.flush().then(() => {
      const live = this.graph.getCellById(node.id);
      if (live && this.nodeId === node.id) this.open(live);
    });
  }

  /** A merge's port named in the edge form: the canvas renames it, and the form reopens on
      the edge as it now is. */
  renamePort() {
    const input = this.element && this.element.querySelector("[data-port-name]");
    if (!input || !this.edges.renamePort || this.isReadOnly()) return;
    const name = input.value.trim();
    if (!name || name === input.dataset.port) return;
    this.edges.renamePort(input.dataset.node, input.dataset.port, name).then((edge) => {
      if (edge) this.openEdge(edge, this.edges.edgeDoc(edge));
    });
  }

  /** The open form's node was renamed (canvas/keys.js): its next edits name the new key. */
  renamed(oldId, newId) {
    if (this.nodeId !== oldId) return;
    this.nodeId = newId;
    const form = this.element && this.element.querySelector("form.nf");
    if (!form) return;
    form.dataset.node = newId;
    form.querySelector('input[name="node_id"]').value = newId;
    const shown = form.querySelector("[data-testid=node-key]");
    if (shown) shown.textContent = newId;
    const field = form.querySelector("[data-node-key]");
    if (field && document.activeElement !== field) field.value = newId;
  }

  /** The edge's form; the server says whether it has anything to set (a loop-back edge). */
  openEdge(edge, edgeDoc) {
    if (!this.element || !window.htmx || !this.edges.url || !edgeDoc) return;
    this.nodeId = null;
    this.edgeId = edge.id;
    const { source, target, source_port, target_port, key, ...kept } = edgeDoc;
    window.htmx.ajax("POST", this.edges.url, {
      target: this.element,
      swap: "innerHTML",
      headers: this.placing(),
      values: {
        edge_id: edge.id,
        source,
        target,
        source_port,
        target_port,
        kept: JSON.stringify(kept),
        graph: JSON.stringify(this.edges.documentJSON()),
        readonly: this.isReadOnly() ? "1" : "0",
      },
    });
  }

  close() {
    this.nodeId = null;
    this.edgeId = null;
    if (this.element) this.element.innerHTML = this.placeholder;
  }

  /** Resolves once the form's pending edits have reached the node (at most 3 s). */
  flush() {
    const form = this.element && this.element.querySelector("form.nf[hx-post]");
    if (!form || this.edits <= this.applied || !window.htmx) return Promise.resolve();
    const pending = new Promise((resolve) => {
      this.waiters.push(resolve);
      setTimeout(resolve, 3000);
    });
    window.htmx.trigger(form, "switchyard:flush");
    return pending;
  }

  listen() {
    const panel = this.element;
    // Once htmx has wired the newly placed form, mark it (tests and scripts wait for this).
    document.body.addEventListener("htmx:afterSettle", (event) => {
      const form = event.detail && event.detail.target === panel && panel.querySelector("form.nf");
      if (!form) return;
      mountSchemaTables(form);
      form.dataset.level = this.openedLevel;
      this.lastAt.set(form.dataset.level, form);
      // On the form itself: an answer that comes after the form left the page is
      // dispatched on it alone, not up to the body. At its own level a newer form shows
      // the node now (an older answer would undo what was typed since): dropped. After a
      // level change, the answer of the last form placed at that level is the last word
      // on its node there: applied, or it would be lost.
      if (!form.dataset.answers) {
        form.dataset.answers = "1";
        form.addEventListener("htmx:afterRequest", (answer) => {
          // Connected, the answer bubbles up to the body's listener below.
          if (!answer.detail || answer.detail.elt !== form || form.isConnected) return;
          const level = form.dataset.level;
          if (level !== this.level() && this.lastAt.get(level) === form) this.answered(answer);
        });
      }
      form.dataset.ready = "true";
    });
    // An opening answer that comes after the canvas changed level: not placed (its node
    // is not drawn; a node of the same id may be).
    document.body.addEventListener("htmx:beforeSwap", (event) => {
      const detail = event.detail || {};
      if (!panel || detail.target !== panel) return;
      const headers = (detail.requestConfig && detail.requestConfig.headers) || {};
      const sent = headers["X-Switchyard-Level"];
      if (sent !== undefined && sent !== this.level()) detail.shouldSwap = false;
    });
    if (panel) {
      panel.addEventListener("input", (event) => {
        if (event.target.closest && event.target.closest("form.nf")) this.edits += 1;
        // A typed key stays as typed: it no longer follows the label.
        if (event.target.matches && event.target.matches("[data-node-key]")) {
          const follows = event.target.form.querySelector("[data-key-follows]");
          if (follows) follows.value = "0";
        }
      });
      panel.addEventListener("click", (event) => {
        editRows(event);
        if (event.target.closest && event.target.closest("[data-port-rename]")) this.renamePort();
      });
      panel.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && event.target.matches && event.target.matches("[data-port-name]")) {
          event.preventDefault();
          this.renamePort();
        }
      });
      panel.addEventListener("change", (event) => showFieldsInUse(event.target));
    }
    document.body.addEventListener("htmx:afterRequest", (event) => {
      const elt = event.detail && event.detail.elt;
      if (elt && elt.matches && elt.matches("form.nf")) this.answered(event);
    });
    document.body.addEventListener("htmx:beforeRequest", (event) => {
      const elt = event.detail && event.detail.elt;
      if (elt && elt.matches && elt.matches("form.nf")) elt.dataset.edits = String(this.edits);
    });
  }

  /** A form response carries the config it checked; the node takes it (as typed when invalid). */
  answered(event) {
    const elt = event.detail.elt;
    try {
      if (event.detail.successful) this.applyResponse(event);
    } finally {
      this.settled(elt);
    }
  }

  settled(elt) {
    this.applied = Math.max(this.applied, Number(elt.dataset.edits || 0));
    const waiting = this.waiters;
    this.waiters = [];
    waiting.forEach((resolve) => resolve());
  }

  applyResponse(event) {
    const html = new DOMParser().parseFromString(event.detail.xhr.responseText, "text/html");
    const edgeScript = html.querySelector("[data-edge-config] script");
    const elt = event.detail.elt;
    // The form's level, when it was placed; the canvas may draw another one now.
    const level = elt.dataset.level;
    const elsewhere = level !== undefined && level !== this.level();
    if (edgeScript) {
      // An edge has no id of its own in the document: its form's answer from another
      // level has no edge to go to (its change is dropped with the form).
      if (!elsewhere) this.applyEdge(JSON.parse(edgeScript.textContent));
      return;
    }
    const script = html.querySelector("[data-node-config] script");
    if (!script) return;
    const payload = JSON.parse(script.textContent);
    if (this.isReadOnly()) return;
    if (elsewhere) {
      // Written into that level's node (a rename waits: it rewires that level's edges).
      const type = elt.querySelector('input[name="type"]');
      if (this.edges.applyAt && type) {
        this.edges.applyAt(JSON.parse(level), payload.node, type.value, (data) => answered(data, payload));
      }
      return;
    }
    const node = this.graph.getCellById(payload.node);
    if (!node) return;
    const data = node.getData() || {};
    const { config, label } = answered(data, payload);
    const rename = payload.key && payload.key !== node.id && this.edges.rename;
    if (JSON.stringify(config) !== JSON.stringify(data.config || {}) || label !== (data.label || "")) {
      node.setData({ type: data.type, config, label, rows: data.rows }, { overwrite: true, source: "form" });
    }
    // The form was reopened while this answer was on its way (a change from elsewhere):
    // the answer's form, with its field errors, went to the old one. Show the node as it
    // now is, or the open form would show the config from before this edit.
    const stale = !event.detail.elt.isConnected && this.nodeId === node.id && !rename;
    if (rename) this.edges.rename(node.id, payload.key);
    else if (stale) this.reopen(node);
  }

  applyEdge(payload) {
    const edge = this.graph.getCellById(payload.edge);
    if (!edge || !edge.isEdge() || this.isReadOnly()) return;
    const data = edge.getData() || {};
    if (JSON.stringify(payload.kept) === JSON.stringify(data.kept || {})) return;
    // One recorded change, as a node's config edit is: undo and redo take it back and forth.
    edge.setData({ ...data, kept: payload.kept }, { overwrite: true, source: "form" });
  }
}

/** A node's data ({config, label}) with a form's answer applied: its checked config, but
    the fields it could not read (`keep`) as the node had them. */
export function answered(data, payload) {
  const config = { ...payload.config };
  for (const key of payload.keep || []) {
    if (data.config && key in data.config) config[key] = data.config[key];
  }
  return { config, label: payload.label || "" };
}

/* A rows field (a table of records): add and remove rows. The change is posted as any
   edit is, by an input event from the form, which the form's hx-trigger hears. */
function editRows(event) {
  const button = event.target.closest && event.target.closest("[data-row-add], [data-row-remove]");
  const form = button && button.closest("form.nf");
  if (!form || button.closest("fieldset[disabled]")) return;
  const field = button.closest(".nf-field");
  const body = field && field.querySelector("tbody[data-rows]");
  if (!body) return;
  if (button.matches("[data-row-add]")) {
    const row = field.querySelector("template[data-row-template]").content.firstElementChild.cloneNode(true);
    body.appendChild(row);
    row.querySelector("input").focus();
  } else {
    button.closest("tr").remove();
    if (!body.querySelector("tr")) {
      body.appendChild(field.querySelector("template[data-row-template]").content.firstElementChild.cloneNode(true));
    }
  }
  body.dispatchEvent(new Event("input", { bubbles: true }));
}

/* Fields that only matter for some values of another (a router's mode): hide the rest. */
function showFieldsInUse(control) {
  const form = control && control.closest && control.closest("form.nf");
  if (!form || !control.name) return;
  for (const field of form.querySelectorAll("[data-when-field]")) {
    if (field.dataset.whenField !== control.name) continue;
    const values = field.dataset.whenValues.split(" ");
    field.classList.toggle("nf-off", !values.includes(control.value));
  }
}
