/* quickadd.js — the next node, added and wired from an output port: a click on the port
   (or a wire let go on empty canvas) opens a searchable menu of node types there; the one
   chosen (click, or type, arrows and Enter) is added beside it and wired (editor.js does
   the adding). Escape or a click elsewhere closes it. */
import { matches } from "./palette.js";

/**
 * Open the menu at client point {x, y} inside `host`. `types` are the palette's items
 * ({type, label, category, description}); `choose(type)` adds and wires the node.
 */
export function openQuickAdd(host, at, types, choose) {
  closeQuickAdd();
  const box = host.getBoundingClientRect();
  const menu = document.createElement("div");
  menu.className = "ed-quickadd";
  menu.dataset.testid = "quickadd";
  menu.setAttribute("role", "dialog");
  menu.setAttribute("aria-label", "Add the next node");
  menu.style.left = `${Math.round(at.x - box.left + 8)}px`;
  menu.style.top = `${Math.round(at.y - box.top - 8)}px`;
  const input = document.createElement("input");
  input.type = "search";
  input.placeholder = "Add and wire a node…";
  input.setAttribute("aria-label", "Search node types");
  input.dataset.testid = "quickadd-search";
  const list = document.createElement("ul");
  list.setAttribute("role", "listbox");
  menu.append(input, list);
  host.appendChild(menu);
  let active = 0;
  let shown = types;
  const draw = () => {
    shown = types.filter((t) => matches(t, input.value));
    active = Math.max(0, Math.min(active, shown.length - 1));
    list.replaceChildren(
      ...shown.map((t, i) => {
        const li = document.createElement("li");
        li.setAttribute("role", "option");
        li.dataset.type = t.type;
        li.dataset.testid = `quickadd-${t.type}`;
        li.className = i === active ? "is-active" : "";
        li.setAttribute("aria-selected", String(i === active));
        li.textContent = `${t.type} — ${t.label}`;
        li.addEventListener("mousedown", (e) => {
          e.preventDefault();
          pick(t.type);
        });
        return li;
      }),
    );
  };
  const pick = (type) => {
    closeQuickAdd();
    choose(type);
  };
  input.addEventListener("input", () => {
    active = 0;
    draw();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      active += e.key === "ArrowDown" ? 1 : -1;
      draw();
    } else if (e.key === "Enter") {
      e.preventDefault();
      if (shown[active]) pick(shown[active].type);
    } else if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      closeQuickAdd();
    }
  });
  // A click anywhere else closes it (after the click that opened it has passed).
  setTimeout(() => document.addEventListener("mousedown", outside, true), 0);
  draw();
  input.focus();
  return menu;
}

function outside(e) {
  const menu = document.querySelector(".ed-quickadd");
  if (menu && !menu.contains(e.target)) closeQuickAdd();
}

export function closeQuickAdd() {
  document.removeEventListener("mousedown", outside, true);
  const menu = document.querySelector(".ed-quickadd");
  if (menu) menu.remove();
}
