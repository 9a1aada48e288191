/* client.js — one chat turn: POST the message, then read the reply's Server-Sent Events
   (delta, then reply) from a fetch body, since an EventSource cannot send headers. */

/** Split an SSE text buffer into complete events; returns [events, rest]. */
export function parseEvents(buffer) {
  const events = [];
  const blocks = buffer.split("\n\n");
  const rest = blocks.pop();
  for (const block of blocks) {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    if (data.length) events.push({ event, data: JSON.parse(data.join("\n")) });
  }
  return [events, rest];
}

/** Read an SSE response to its end, calling onEvent(event, data) for each. */
export async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    const [events, rest] = parseEvents(buffer);
    buffer = rest;
    for (const { event, data } of events) onEvent(event, data);
  }
}

async function problem(response) {
  try {
    const body = await response.json();
    return body.detail || response.statusText;
  } catch {
    return response.statusText;
  }
}

/**
 * A chat against one server: `sendUrl` takes {message, conversation}; `headers()` adds
 * what the server needs (the visitor token, the CSRF token). The view gets callbacks.
 */
export class ChatSession {
  constructor({ sendUrl, headers, onVisitor }) {
    this.sendUrl = sendUrl;
    this.headers = headers;
    this.onVisitor = onVisitor || (() => {});
    this.conversation = null;
  }

  /** One turn: resolves with the stored reply ({id, content, run?}); throws Error(detail). */
  async send(message, { onDelta }) {
    const answer = await fetch(this.sendUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", ...this.headers() },
      body: JSON.stringify({ message, conversation: this.conversation }),
    });
    if (!answer.ok) {
      const retry = answer.headers.get("Retry-After");
      const detail = await problem(answer);
      throw new Error(retry ? `${detail} (try again in ${retry} s)` : detail);
    }
    const started = await answer.json();
    this.conversation = started.conversation;
    if (started.visitor) this.onVisitor(started.visitor);
    const streamed = await fetch(started.stream, {
      credentials: "same-origin",
      headers: { Accept: "text/event-stream", ...this.headers() },
    });
    if (!streamed.ok) throw new Error(await problem(streamed));
    let reply = null;
    await readEvents(streamed, (event, data) => {
      if (event === "delta") onDelta(data.text);
      else if (event === "reply") reply = data;
    });
    if (!reply) throw new Error("the reply stream ended early");
    return { ...reply, runUrl: started.run_url };
  }
}

/** Wire a chat box (the #chat markup of templates/chat/page.html) to a session. */
export function mountChat(root, session) {
  const log = root.querySelector("[data-chat-log]");
  const form = root.querySelector("[data-chat-form]");
  const input = form.querySelector("textarea");
  const button = form.querySelector("button");
  const error = root.querySelector("[data-chat-error]");

  function bubble(role, text) {
    const item = document.createElement("li");
    item.className = "chat-msg";
    item.dataset.role = role;
    item.dataset.testid = `chat-${role}`;
    const body = document.createElement("span");
    body.className = "chat-text";
    body.textContent = text;
    item.append(body);
    log.append(item);
    log.scrollTop = log.scrollHeight;
    return item;
  }

  async function submit() {
    const message = input.value.trim();
    if (!message || button.disabled) return;
    error.hidden = true;
    button.disabled = true;
    bubble("user", message);
    input.value = "";
    const item = bubble("assistant", "");
    item.dataset.pending = "true";
    const text = item.querySelector(".chat-text");
    try {
      const reply = await session.send(message, {
        onDelta: (delta) => {
          text.textContent += delta;
          log.scrollTop = log.scrollHeight;
        },
      });
      text.textContent = reply.content;
      item.dataset.pending = "false";
      if (reply.runUrl) {
        const link = document.createElement("a");
        link.className = "chat-run";
        link.href = reply.runUrl;
        link.target = "_blank";
        link.rel = "noopener";
        link.textContent = `run ${reply.run} (replay)`;
        link.dataset.testid = "chat-run";
        item.append(link);
      }
    } catch (problemError) {
      item.remove();
      error.textContent = problemError.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
      input.focus();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      submit();
    }
  });
}
