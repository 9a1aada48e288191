/*
 * canvas/sidetabs.js — the editor's right column: the run bar on top, then one of two tabs,
 * "Node" (the flow's problems and warnings above the node form) or "Run & outputs" (the run
 * form, outputs, steps, past runs). One pane at a time gets the whole height, so nothing
 * overlaps and "Start run" stays on screen at 1280x800.
 *
 * The tab follows what the user does: Run (or a run starting) shows the run; opening a node
 * or an edge shows its form, unless a run is under way (a click then shows that node's run
 * detail, runs/view.js). The flow's problems count on the Node tab (a refused run lists
 * its own in the run tab). The tab list is a WAI-ARIA tab list: arrow keys move between
 * tabs.
 */

// A run parked for a person (waiting) is still under way: its tab stays shown.
const ACTIVE = new Set(["queued", "running", "waiting"]);

export function sideTabs(side) {
  const tabs = [...side.querySelectorAll("[data-side-tab]")];
  const panes = new Map(tabs.map((t) => [t.dataset.sideTab, side.querySelector(`[data-side-pane="${t.dataset.sideTab}"]`)]));
  const status = side.querySelector("[data-run-status]");
  const runActive = () => Boolean(status && ACTIVE.has(status.dataset.status));

  function show(name, focus) {
    if (!panes.has(name)) return;
    for (const tab of tabs) {
      const on = tab.dataset.sideTab === name;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      const pane = panes.get(tab.dataset.sideTab);
      if (pane) pane.hidden = !on;
      if (on && focus) tab.focus();
    }
    side.dataset.tab = name;
  }

  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => show(tab.dataset.sideTab));
    tab.addEventListener("keydown", (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (!step) return;
      e.preventDefault();
      show(tabs[(i + step + tabs.length) % tabs.length].dataset.sideTab, true);
    });
  });

  const open = side.querySelector("[data-run-open]");
  if (open) open.addEventListener("click", () => show("run"));
  if (status) {
    new MutationObserver(() => {
      if (runActive()) show("run");
    }).observe(status, { attributes: true, attributeFilter: ["data-status"] });
  }

  const form = document.getElementById("node-panel");
  if (form) {
    const placeholder = form.innerHTML;
    new MutationObserver(() => {
      if (form.innerHTML !== placeholder && !runActive()) show("node");
    }).observe(form, { childList: true });
  }

  const problems = side.querySelector('[data-testid="problems"]');
  const count = side.querySelector("[data-tab-count]");
  if (problems) {
    const update = () => {
      const n = problems.hidden ? 0 : problems.querySelectorAll("ol > li").length;
      if (count) {
        count.hidden = n === 0;
        count.textContent = String(n);
      }
    };
    new MutationObserver(update).observe(problems, { attributes: true, attributeFilter: ["hidden"], childList: true, subtree: true });
  }

  show(side.dataset.tab || "node");
  return { show };
}

const side = document.querySelector(".ed-side[data-testid=side]");
if (side) sideTabs(side);
