/*
 * collab.js — editing together, in the flow editor (templates/flows/_collab_slot.html).
 *
 * Follows /ws/flows/<id>/ (webapp/flows/collab/consumers.py) and places what the server renders:
 *   - presence: the list of everyone else with the flow open, replaced whenever it changes;
 *   - a save by anyone: when this tab has no unsaved changes its canvas loads the new
 *     version in place (GET /api/flows/<id>, then canvas.load with the version); when it
 *     has, the banner /flows/<id>/collab/saved/<n>/ offers "Save mine as a copy", "View
 *     the difference" and "Discard mine, load theirs".
 * Nothing here ever saves this flow: the canvas keeps the version it was based on, so a
 * save after the banner is refused (409) until theirs is loaded. A refused save brings
 * the same banner back (the canvas's "switchyard:conflict"), in place of the canvas's line.
 * The socket closing with 4403 means access to the flow went: the tab turns read-only.
 * Closing with 4401 means this tab's sign-in went (logged out elsewhere): it stops following.
 * After loading a teammate's version it dispatches "switchyard:collab-loaded" {detail: {version}}.
 */
import { canvas } from "./canvas/editor.js";
import { ReconnectingSocket, csrfToken, socketURL } from "./lib/net.js";

function start() {
  const slot = document.getElementById("collab-presence");
  if (!slot || !canvas || !window.WebSocket) return;

  const ACCESS_GONE = 4403;
  const SIGNED_OUT = 4401;
  const people = slot.querySelector("[data-collab-people]");
  const banners = document.getElementById("ed-banners");
  const savedUrl = (n) => slot.dataset.savedUrl.replace(/\/0\/$/, `/${n}/`);

  // ---- What the socket says ----------------------------------------------------------------
  function receive(data) {
    if (data.type === "presence" && people) {
      people.innerHTML = data.html;
      document.documentElement.dataset.collab = "live";
    } else if (data.type === "saved" || data.type === "hello") {
      onSaved(Number(data.version));
    } else if (data.type === "role" && data.role === "viewer" && !canvas.isReadOnly()) {
      canvas.setReadOnly(true);
      notice("viewer");
    }
  }

  function notice(name) {
    const template = slot.querySelector(`template[data-collab-notice="${name}"]`);
    if (!template || !banners) return;
    const box = template.content.firstElementChild.cloneNode(true);
    banners.querySelectorAll(`[data-banner="${box.dataset.banner}"]`).forEach((el) => el.remove());
    banners.appendChild(box);
  }

  // ---- Someone saved -----------------------------------------------------------------------
  let announced = 0; // the newest version the socket told of
  function onSaved(number) {
    if (!Number.isInteger(number)) return;
    announced = Math.max(announced, number);
    // This tab's own save may still be on its way back: decide once it has landed.
    const pending = canvas.pendingSave && canvas.pendingSave();
    if (pending) {
      pending.then(() => onSaved(number), () => onSaved(number));
      return;
    }
    if (number <= canvas.version) return;
    if (canvas.isDirty()) showBanner(number);
    else loadTheirs(false);
  }

  /** The newest saved version, loaded in place. Unless forced, local changes made while
      it was on its way win: then the banner, never a silent discard. */
  function loadTheirs(force) {
    return fetch(slot.dataset.flowUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : Promise.reject(new Error(String(response.status)))))
      .then((out) => {
        if (!force && out.version <= canvas.version) return;
        if (!force && (canvas.isDirty() || canvas.pendingSave())) {
          onSaved(out.version);
          return;
        }
        canvas.load(out.graph, { version: out.version, keepView: true });
        banners && banners.querySelectorAll('[data-banner="collab"]').forEach((el) => el.remove());
        refreshMeta();
        document.dispatchEvent(new CustomEvent("switchyard:collab-loaded", { detail: { version: out.version } }));
      })
      .catch(() => {
        /* the next save or reconnect tries again */
      });
  }

  function refreshMeta() {
    const meta = document.querySelector('[data-testid="version-meta"][hx-get]');
    if (meta && window.htmx) window.htmx.ajax("GET", meta.getAttribute("hx-get"), { target: meta, swap: "innerHTML" });
  }

  let asking = 0; // the version whose banner is on its way
  function showBanner(number) {
    if (!banners || !window.htmx) return;
    const shown = banners.querySelector('[data-banner="collab"]');
    if (asking >= number || (shown && Number(shown.dataset.version) >= number)) {
      dropConflict();
      return;
    }
    asking = number;
    window.htmx.ajax("GET", savedUrl(number), { target: banners, swap: "beforeend" }).finally(() => {
      if (asking === number) asking = 0;
      // One banner, for the newest version; it says more than the canvas's conflict line.
      const all = [...banners.querySelectorAll('[data-banner="collab"]')];
      const keep = all.reduce((best, el) => (!best || Number(el.dataset.version) > Number(best.dataset.version) ? el : best), null);
      all.filter((el) => el !== keep).forEach((el) => el.remove());
      dropConflict();
    });
  }

  function dropConflict() {
    banners.querySelectorAll('[data-banner="conflict"]').forEach((el) => el.remove());
  }

  // A save refused with 409. When the socket told of that version, the banner (which
  // names who saved it) replaces the canvas's own line; a save it never heard of (another
  // process without a shared channel layer) keeps the canvas's line and its Reload.
  document.addEventListener("switchyard:conflict", (event) => {
    const number = Number(event.detail && event.detail.version);
    if (Number.isInteger(number) && number > canvas.version && number <= announced) showBanner(number);
  });

  // ---- The banner's choices ------------------------------------------------------------------
  function post(url, banner, values) {
    const result = banner.querySelector("[data-collab-result]");
    return window.htmx
      .ajax("POST", url, { target: result, swap: "innerHTML", values, headers: { "X-CSRFToken": csrfToken() } })
      .then(() => result);
  }

  if (banners) {
    banners.addEventListener("click", (event) => {
      const focus = event.target.closest("[data-focus-node]");
      if (focus) {
        canvas.focusNode(focus.dataset.focusNode);
        return;
      }
      const button = event.target.closest("[data-collab-action]");
      const banner = button && button.closest("[data-banner]");
      if (!banner) return;
      const action = button.dataset.collabAction;
      const local = () => ({ doc: JSON.stringify(canvas.documentJSON()), version: banner.dataset.version });
      if (action === "dismiss") {
        banner.remove();
      } else if (action === "discard") {
        loadTheirs(true);
      } else if (action === "diff") {
        post(banner.dataset.diffUrl, banner, local());
      } else if (action === "copy") {
        button.disabled = true;
        post(banner.dataset.copyUrl, banner, { doc: local().doc, version: canvas.version }).then((result) => {
          button.disabled = false;
          const copied = result.querySelector('[data-banner="collab-copied"]');
          if (!copied) return;
          // The copy exists: this tab may now show the flow as saved.
          banner.replaceWith(copied);
          loadTheirs(true);
        });
      }
    });
  }

  // ---- The socket (lib/net.js: backoff, ping when quiet; 4403 and 4401 end it) ------
  return new ReconnectingSocket(
    () => socketURL(slot.dataset.socketPath),
    {
      message: receive,
      close: (event) => {
        if (people) people.replaceChildren();
        if (event.code === ACCESS_GONE) {
          canvas.setReadOnly(true);
          notice("revoked");
        } else if (event.code === SIGNED_OUT) {
          notice("signed-out");
        }
      },
    },
    { backoffMs: [1000, 2000, 4000, 8000, 15000], jitter: false, pingMs: 25000, finalCodes: [ACCESS_GONE, SIGNED_OUT] },
  );
}

start();
