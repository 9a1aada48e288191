/* panel.js — the editor's chat panel: try a chat flow's newest saved version; each reply
   links to its run, whose page replays it. */
import { csrfToken } from "../lib/net.js";
import { ChatSession, mountChat } from "./client.js";

const panel = document.getElementById("chat-panel");
const toggle = document.querySelector("[data-chat-toggle]");
const root = panel.querySelector(".chat");
const session = new ChatSession({
  sendUrl: root.dataset.sendUrl,
  headers: () => ({ "X-CSRFToken": csrfToken() }),
});
mountChat(root, session);

toggle.addEventListener("click", () => {
  panel.hidden = !panel.hidden;
  toggle.setAttribute("aria-expanded", String(!panel.hidden));
  if (!panel.hidden) root.querySelector("textarea").focus();
});
panel.querySelector("[data-chat-new]").addEventListener("click", () => {
  session.conversation = null;
  root.querySelector("[data-chat-log]").replaceChildren();
});
