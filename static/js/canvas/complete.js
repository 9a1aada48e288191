/* complete.js — `{{` completion in a node form's template fields (an llm's prompt, a
   template, a router's llm prompt: the fields whose variables are the node's input ports,
   rendered with class nf-template). Typing `{{` offers the names a prompt can read: the
   node's own input ports (a wired variable is a port named after the edge's target port),
   then the other nodes that could feed it, by the name a port would take: an input by its
   run input's name, any other node by its key (a merge names its ports the same way).
   Accepting inserts `name }}` and fires the form's input event, so the server checks the
   config as if it were typed and the port appears. The listbox follows the ARIA 1.2
   pattern for a text box with a list popup: focus stays in the text area, which points at
   the active option with aria-activedescendant. The pure part is tested in
   complete.test.js; attachCompletion() is the browser's. */
import { displayName } from "./keys.js";

const NAME_CHARS = /^[A-Za-z0-9_-]*$/;
const MOST = 8;

/**
 * Whether the caret is inside a `{{` being typed: {start, query}, where `start` is where
 * the name begins (after `{{` and spaces) and `query` what has been typed of it; else null.
 */
export function completionAt(text, caret) {
  const before = String(text || "").slice(0, caret);
  const open = before.lastIndexOf("{{");
  if (open < 0) return null;
  const after = before.slice(open + 2);
  // A closed tag, or a name already followed by more (a filter, a dot), is not completed.
  if (after.includes("}}")) return null;
  const query = after.replace(/^\s+/, "");
  if (!NAME_CHARS.test(query)) return null;
  return { start: caret - query.length, query };
}

/**
 * The names to offer for node `nodeId` of `doc` ({nodes, edges} as the document has them),
 * whose input ports are `ports`: [{name, detail}], its ports first. Nodes downstream of it
 * are left out (feeding it would close a loop), and so are outputs, which emit nothing.
 */
export function namesFor(nodeId, doc, ports) {
  const nodes = new Map((doc.nodes || []).map((n) => [n.id, n]));
  const edges = doc.edges || [];
  const offered = new Map();
  const offer = (name, detail) => {
    if (name && name !== "+" && !offered.has(name)) offered.set(name, { name, detail });
  };
  const feeding = new Set();
  for (const port of ports || []) {
    const from = edges.filter((e) => e.target === nodeId && e.target_port === port);
    from.forEach((e) => feeding.add(e.source));
    const sources = from.map((e) => (nodes.has(e.source) ? displayName(nodes.get(e.source)) : e.source));
    offer(port, sources.length ? `wired from ${sources.join(", ")}` : "input port, not wired yet");
  }
  const downstream = new Set([nodeId]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const e of edges) {
      if (downstream.has(e.source) && !downstream.has(e.target)) {
        downstream.add(e.target);
        grew = true;
      }
    }
  }
  for (const node of nodes.values()) {
    if (downstream.has(node.id) || feeding.has(node.id) || node.type === "output") continue;
    if (node.type === "input") offer((node.config && node.config.name) || node.id, "flow input");
    else offer(node.id, `output of ${displayName(node)}`);
  }
  return [...offered.values()];
}

/** The offers matching `query`: names starting with it first, then containing it; any
    case; at most eight. */
export function filterOffers(offers, query) {
  const q = String(query || "").toLowerCase();
  const starts = offers.filter((o) => o.name.toLowerCase().startsWith(q));
  const contains = offers.filter((o) => !o.name.toLowerCase().startsWith(q) && o.name.toLowerCase().includes(q));
  return [...starts, ...contains].slice(0, MOST);
}

/**
 * `text` with the name typed from `start` to `caret` replaced by `name }}` (a space after
 * a bare `{{`, and a closing `}}` already there reused rather than doubled): {text, caret},
 * the caret after the tag.
 */
export function accept(text, start, caret, name) {
  const source = String(text || "");
  const head = source.slice(0, start);
  let tail = source.slice(caret);
  const gap = head.endsWith("{{") ? " " : "";
  const closing = tail.match(/^[A-Za-z0-9_-]*\s*\}\}/);
  if (closing) tail = tail.slice(closing[0].length);
  const inserted = `${gap}${name} }}`;
  return { text: head + inserted + tail, caret: head.length + inserted.length };
}

// ---- In the browser --------------------------------------------------------------------

let serial = 0;

/**
 * Completion for every template field of the node forms placed in `panelElement`.
 * `context()` gives {nodeId, doc, ports} for the open form's node, or null.
 */
export function attachCompletion(panelElement, context) {
  if (!panelElement) return;
  let open = null; // {field, list, items, active, start}

  const close = () => {
    if (!open) return;
    const { field, list } = open;
    list.remove();
    field.removeAttribute("aria-activedescendant");
    field.removeAttribute("aria-controls");
    open = null;
  };

  const highlight = (index) => {
    if (!open) return;
    open.active = (index + open.items.length) % open.items.length;
    [...open.list.children].forEach((li, i) => li.setAttribute("aria-selected", i === open.active ? "true" : "false"));
    const li = open.list.children[open.active];
    open.field.setAttribute("aria-activedescendant", li.id);
    li.scrollIntoView({ block: "nearest" });
  };

  const choose = (index) => {
    if (!open) return;
    const { field, start, items } = open;
    const chosen = items[index];
    close();
    if (!chosen) return;
    const done = accept(field.value, start, field.selectionStart, chosen.name);
    field.value = done.text;
    field.setSelectionRange(done.caret, done.caret);
    field.focus();
    // As if typed: the form posts it (hx-trigger "input"), the node takes the new config.
    field.dispatchEvent(new Event("input", { bubbles: true }));
    field.dispatchEvent(new Event("change", { bubbles: true }));
  };

  const show = (field) => {
    const at = field.selectionStart === field.selectionEnd ? completionAt(field.value, field.selectionStart) : null;
    const ctx = at && context();
    const items = ctx ? filterOffers(namesFor(ctx.nodeId, ctx.doc, ctx.ports), at.query) : [];
    if (!items.length) {
      close();
      return;
    }
    if (!open || open.field !== field) {
      close();
      const list = document.createElement("ul");
      list.id = `nf-complete-${++serial}`;
      list.className = "nf-complete";
      list.setAttribute("role", "listbox");
      list.setAttribute("aria-label", "Names this prompt can use");
      list.dataset.testid = "completion";
      // Keep the focus in the text area; a click then accepts.
      list.addEventListener("mousedown", (event) => event.preventDefault());
      list.addEventListener("click", (event) => {
        const li = event.target.closest && event.target.closest("[role=option]");
        if (li && open) choose(Number(li.dataset.index));
      });
      field.insertAdjacentElement("afterend", list);
      field.setAttribute("aria-controls", list.id);
      field.setAttribute("aria-autocomplete", "list");
      open = { field, list, items: [], active: 0, start: at.start };
    }
    open.items = items;
    open.start = at.start;
    open.list.replaceChildren(
      ...items.map((item, i) => {
        const li = document.createElement("li");
        li.id = `${open.list.id}-${i}`;
        li.setAttribute("role", "option");
        li.dataset.index = String(i);
        const code = document.createElement("code");
        code.textContent = item.name;
        const detail = document.createElement("span");
        detail.className = "nf-complete-detail";
        detail.textContent = item.detail;
        li.append(code, " ", detail);
        return li;
      }),
    );
    highlight(0);
  };

  const isTemplate = (el) =>
    el && el.matches && el.matches(".nf-template textarea") && !el.disabled && !el.closest("fieldset[disabled]");

  panelElement.addEventListener("input", (event) => {
    if (isTemplate(event.target)) show(event.target);
  });
  panelElement.addEventListener("keydown", (event) => {
    if (!open || event.target !== open.field) return;
    const keys = {
      ArrowDown: () => highlight(open.active + 1),
      ArrowUp: () => highlight(open.active - 1),
      Enter: () => choose(open.active),
      Tab: () => choose(open.active),
      Escape: () => close(),
    };
    const act = keys[event.key];
    if (!act || event.shiftKey || event.altKey || event.ctrlKey || event.metaKey) return;
    event.preventDefault();
    event.stopPropagation();
    act();
  });
  // A caret moved away from the tag (a click elsewhere in the text, leaving the field).
  panelElement.addEventListener("click", (event) => {
    if (open && event.target === open.field) show(open.field);
  });
  panelElement.addEventListener("focusout", (event) => {
    if (open && event.target === open.field) close();
  });
}
