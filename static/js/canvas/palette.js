/* palette.js — adding nodes from the palette without dragging: a click or Enter on an item
   adds its node at a free spot near the middle of the view; the search box filters the
   items (by type, label, category and help text) and is driven from the keyboard (type,
   arrows, Enter). Dragging an item still drops it where you let go (editor.js).
   freeSpot() and matches() are pure (palette.test.js). */

const GAP = 30;

const overlaps = (a, b, gap) =>
  a.x < b.x + b.width + gap && b.x < a.x + a.width + gap && a.y < b.y + b.height + gap && b.y < a.y + a.height + gap;

/**
 * Where a node of `size` goes near `centre` (its own centre there when free) without
 * touching any of `boxes` ({x, y, width, height}, GAP apart): the nearest free cell of
 * a grid of rings around the centre. With `view` ({x, y, width, height}), a cell wholly
 * inside it first, so the node is seen being added. Returns its top-left {x, y}, whole
 * numbers.
 */
export function freeSpot(boxes, centre, size, gap = GAP, view = null) {
  const inView = (at) =>
    at.x >= view.x && at.y >= view.y && at.x + size.width <= view.x + view.width && at.y + size.height <= view.y + view.height;
  if (view) {
    const seen = nearestFree(boxes, centre, size, gap, inView);
    if (seen) return seen;
  }
  const start = { x: Math.round(centre.x - size.width / 2), y: Math.round(centre.y - size.height / 2) };
  return nearestFree(boxes, centre, size, gap, () => true) || start;
}

function nearestFree(boxes, centre, size, gap, allowed) {
  const start = { x: Math.round(centre.x - size.width / 2), y: Math.round(centre.y - size.height / 2) };
  const stepX = size.width + gap;
  const stepY = Math.round(size.height / 2) + gap;
  const free = (at) => allowed(at) && !boxes.some((b) => overlaps({ ...at, ...size }, b, gap));
  for (let ring = 0; ring <= 40; ring++) {
    const spots = [];
    for (let i = -ring; i <= ring; i++) {
      for (let j = -ring; j <= ring; j++) {
        if (Math.max(Math.abs(i), Math.abs(j)) !== ring) continue;
        spots.push({ x: start.x + i * stepX, y: start.y + j * stepY });
      }
    }
    // The nearest first; level with the centre before above or below it.
    spots.sort((a, b) => Math.hypot(a.x - start.x, a.y - start.y) - Math.hypot(b.x - start.x, b.y - start.y));
    const found = spots.find(free);
    if (found) return found;
  }
  return null;
}

/** Whether a palette item ({type, label, category, description}) matches the query: every
    word of it, case-insensitively, somewhere in those. */
export function matches(item, query) {
  const words = String(query || "").toLowerCase().split(/\s+/).filter(Boolean);
  const text = [item.type, item.label, item.category, item.description].join(" ").toLowerCase();
  return words.every((w) => text.includes(w));
}

/**
 * Wire the palette in `root`: `add(type)` adds a node of that type at a free spot;
 * `isReadOnly()` says whether adding is allowed.
 */
export function mountPalette(root, { add, isReadOnly }) {
  if (!root) return;
  const items = [...root.querySelectorAll("[data-palette-type]")];
  const search = root.querySelector("[data-palette-search]");
  const empty = root.querySelector("[data-palette-none]");
  let active = -1;

  const visible = () => items.filter((el) => !el.hidden);
  const mark = (index) => {
    const shown = visible();
    active = shown.length ? Math.max(0, Math.min(index, shown.length - 1)) : -1;
    items.forEach((el) => el.classList.remove("is-active"));
    const el = shown[active];
    if (el) {
      el.classList.add("is-active");
      el.scrollIntoView({ block: "nearest" });
      if (search) search.setAttribute("aria-activedescendant", el.id);
    } else if (search) search.removeAttribute("aria-activedescendant");
  };
  const addItem = (el) => {
    if (el && !isReadOnly()) add(el.dataset.paletteType);
  };

  for (const el of items) {
    // A plain click adds (a drag started on mousedown and ended off the canvas adds nothing,
    // and one ended on the canvas never clicks here).
    el.addEventListener("click", () => addItem(el));
    el.addEventListener("keydown", (e) => {
      if (e.key !== "Enter" && e.key !== " ") return;
      e.preventDefault();
      e.stopPropagation();
      addItem(el);
    });
  }
  if (!search) return;
  search.addEventListener("input", () => {
    for (const el of items) {
      el.hidden = !matches(
        { type: el.dataset.paletteType, label: el.dataset.label, category: el.dataset.cat, description: el.dataset.description },
        search.value,
      );
      // The item is a button inside its list item: the row goes with it.
      if (el.parentElement && el.parentElement.tagName === "LI") el.parentElement.hidden = el.hidden;
    }
    if (empty) empty.hidden = visible().length > 0;
    mark(search.value.trim() ? 0 : -1);
  });
  search.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown") {
      e.preventDefault();
      mark(active + 1);
    } else if (e.key === "ArrowUp") {
      e.preventDefault();
      mark(active - 1);
    } else if (e.key === "Enter") {
      e.preventDefault();
      addItem(visible()[Math.max(active, 0)]);
    } else if (e.key === "Escape" && search.value) {
      e.preventDefault();
      e.stopPropagation();
      search.value = "";
      search.dispatchEvent(new Event("input"));
    }
  });
}
