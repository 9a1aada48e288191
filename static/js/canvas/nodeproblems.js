/* nodeproblems.js — the node form's badge agrees with the flow's problems.

   The server checks a node's config alone (webapp/flows/forms.py): it cannot know that a
   template's {{ variable }} has no edge into it. The flow's problems (what a save lists
   on the version: the editor's live check and each save's answer) can; a node that has
   any shows "needs attention" and the messages under the badge, whatever its config
   says. A form swapped in later (htmx) is brought in line again.

   A node that failed in the run on the canvas (live or replayed) shows the run's error at
   the top of its form: clicking the failed node tells why it failed. */

let current = []; // the newest problems [{node, message}] of the flow
let panelElement = null;
let runErrorOf = () => "";

/** The flow's problems changed: remember them and fix the open form's badge. */
export function setFormProblems(items) {
  current = Array.isArray(items) ? items : [];
  syncForm();
}

/** Watch `panel` (the #node-panel element) for forms placed or re-checked by htmx;
    runError(nodeId) is why that node failed in the run on the canvas ("" if it did not). */
export function watchForms(panel, runError) {
  panelElement = panel;
  if (runError) runErrorOf = runError;
  if (!panel) return;
  document.body.addEventListener("htmx:afterSettle", () => syncForm());
  document.body.addEventListener("htmx:oobAfterSwap", () => syncForm());
}

export function syncForm() {
  const form = panelElement && panelElement.querySelector("form.nf[data-node]");
  if (!form) return;
  showRunError(form, runErrorOf(form.dataset.node));
  const state = form.querySelector(".nf-state");
  if (!state) return;
  const messages = current.filter((p) => p.node === form.dataset.node).map((p) => p.message || p.text || "");
  let note = form.querySelector("[data-flow-problems]");
  if (messages.length) {
    if (!state.classList.contains("bad")) state.dataset.flowProblem = "true";
    state.classList.add("bad");
    state.textContent = "needs attention";
    form.classList.add("is-invalid");
    if (!note) {
      note = document.createElement("ul");
      note.className = "form-errors nf-flow-problems";
      note.dataset.flowProblems = "";
      note.dataset.testid = "node-flow-problems";
      form.querySelector(".nf-head").after(note);
    }
    note.replaceChildren(
      ...messages.map((m) => {
        const li = document.createElement("li");
        li.textContent = m;
        return li;
      }),
    );
  } else {
    if (note) note.remove();
    // Only undo what this module did: the server's own verdict on the config stands.
    if (state.dataset.flowProblem) {
      delete state.dataset.flowProblem;
      state.classList.remove("bad");
      state.textContent = "valid";
      form.classList.remove("is-invalid");
    }
  }
}

function showRunError(form, error) {
  let box = form.querySelector("[data-node-run-error]");
  if (!error) {
    if (box) box.remove();
    return;
  }
  if (!box) {
    box = document.createElement("div");
    box.className = "nf-run-error";
    box.dataset.nodeRunError = "";
    box.dataset.testid = "node-run-error";
    box.setAttribute("role", "alert");
    const title = document.createElement("strong");
    title.textContent = "Failed in the run";
    box.append(title, document.createElement("pre"));
    form.querySelector(".nf-head").after(box);
  }
  box.querySelector("pre").textContent = error;
}
