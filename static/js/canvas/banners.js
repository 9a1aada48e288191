/* banners.js — the editor's banners in #ed-banners: one per id, with action buttons and a
   close button; a toast is a banner that goes by itself. */

const box = () => document.getElementById("ed-banners");

/** Show banner `id` (replacing one of that id): actions = [[label, onClick, testid?]];
    kind: info | ok | warn | err. Returns its element (null without #ed-banners). */
export function banner(id, text, actions, kind) {
  const banners = box();
  if (!banners) return null;
  clearBanner(id);
  const el = document.createElement("div");
  el.className = `ed-banner ${kind || "info"}`;
  el.dataset.banner = id;
  el.setAttribute("role", kind === "err" || kind === "warn" ? "alert" : "status");
  const p = document.createElement("span");
  p.textContent = text;
  el.appendChild(p);
  for (const [label, action, testid] of actions || []) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "button small";
    b.textContent = label;
    if (testid) b.dataset.testid = testid;
    b.addEventListener("click", action);
    el.appendChild(b);
  }
  const close = document.createElement("button");
  close.type = "button";
  close.className = "ed-banner-close";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "×";
  close.addEventListener("click", () => el.remove());
  el.appendChild(close);
  banners.appendChild(el);
  // A warning or error must be read: the version-message popover, open by Save, would
  // cover it. Its text stays for the next save.
  if (kind === "err" || kind === "warn") {
    document.querySelectorAll("details.vs-describe[open]").forEach((d) => d.removeAttribute("open"));
  }
  return el;
}

export function clearBanner(id) {
  const banners = box();
  if (!banners) return;
  banners.querySelectorAll(`[data-banner="${id}"]`).forEach((el) => el.remove());
}

export function toast(text) {
  const el = banner("toast", text, [], "ok");
  if (el) setTimeout(() => el.remove(), 2500);
}
