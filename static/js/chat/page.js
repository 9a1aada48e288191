/* page.js — the chat link's page (/c/<token>/), alone or framed by the widget. */
import { ChatSession, mountChat } from "./client.js";

const root = document.getElementById("chat");
let visitor = root.dataset.visitor;
const session = new ChatSession({
  sendUrl: `${root.dataset.base}messages`,
  headers: () => ({ "X-Chat-Visitor": visitor }),
  onVisitor: (token) => {
    visitor = token;
  },
});
mountChat(root, session);
