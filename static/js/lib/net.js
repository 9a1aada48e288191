/* net.js — talking to this server: the CSRF token, JSON requests, and the one reconnecting
   websocket that both the run follower (runs/follower.js) and editing together (collab.js)
   use. */

/** The CSRF token templates/base.html puts in <meta name="csrf-token">. */
export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return (meta && meta.content) || "";
}

/**
 * A JSON request from this page's session: resolves to {status, ok, statusText, data}
 * (data is null when the answer is not JSON); rejects only when the server cannot be reached.
 */
export async function requestJSON(method, url, body) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  return { status: response.status, ok: response.ok, statusText: response.statusText, data };
}

/** POST a JSON body: {status, ok, data} (data {} when the answer is not JSON). */
export function postJSON(url, body) {
  return requestJSON("POST", url, body || {}).then((result) => ({ ...result, data: result.data || {} }));
}

/** POST a FormData (multipart; the browser writes its boundary) from this page's session:
    {status, ok, data} as postJSON answers. */
export async function postForm(url, form) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    body: form,
  });
  const data = await response.json().catch(() => null);
  return { status: response.status, ok: response.ok, statusText: response.statusText, data: data || {} };
}

/** ws: or wss: (as the page) to a path on this host. */
export function socketURL(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return scheme + "//" + location.host + path;
}

export const PING = '{"type":"ping"}'; // exactly this text: the servers compare it

/**
 * A websocket that comes back after an unexpected close, with backoff.
 *
 *   new ReconnectingSocket(url, {open, message, close}, options)
 *
 * url() is asked on every (re)connect, so it can name where to resume (`?after=SEQ`).
 * message(data, socket) gets each frame's JSON; close(event) each close of the current
 * socket, before the socket decides what follows: nothing after a code in `finalCodes`
 * (access gone, signed out: asking again is refused) or after stop(); otherwise another
 * try after backoffMs[step] (times 0.75-1.25 with `jitter`), where a code in `slowCodes`
 * starts at its step ({4503: 2}: the server is up, only slow to have more). The step
 * resets once a message arrives. While the socket is open and has heard nothing for
 * pingMs it sends PING. The browser coming back online reconnects at once.
 */
export class ReconnectingSocket {
  constructor(url, handlers, options) {
    const opts = options || {};
    this.url = url;
    this.handlers = handlers || {};
    this.backoffMs = opts.backoffMs || [250, 500, 1000, 2000, 4000, 8000];
    this.jitter = opts.jitter !== false;
    this.pingMs = opts.pingMs || 3000;
    this.finalCodes = new Set(opts.finalCodes || [4401, 4403]);
    this.slowCodes = opts.slowCodes || {};
    this.ws = null;
    this.retries = 0;
    this.stopped = false;
    this.timer = 0;
    this.opened = 0; // sockets opened so far (tests and debugging)
    this.heardAt = 0;
    this.pinger = setInterval(() => this.ping(), Math.min(1000, this.pingMs));
    this.onOnline = () => {
      if (!this.ws && !this.stopped) {
        clearTimeout(this.timer);
        this.connect();
      }
    };
    window.addEventListener("online", this.onOnline);
    this.connect();
  }

  get isOpen() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
  }

  connect() {
    if (this.stopped) return;
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (_) {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.opened += 1;
      this.heardAt = Date.now();
      if (this.handlers.open) this.handlers.open();
    };
    ws.onmessage = (message) => {
      if (this.ws !== ws) return;
      this.heardAt = Date.now();
      let data;
      try {
        data = JSON.parse(message.data);
      } catch (_) {
        return;
      }
      this.retries = 0;
      if (this.handlers.message) this.handlers.message(data, this);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      const final = this.finalCodes.has(event.code);
      if (final) this.stop();
      if (this.handlers.close) this.handlers.close(event);
      if (!final) this.retry(this.slowCodes[event.code] || 0);
    };
  }

  /** A quiet open socket asks for what the channel layer may have dropped. */
  ping() {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || Date.now() - this.heardAt < this.pingMs) return;
    this.heardAt = Date.now();
    try {
      ws.send(PING);
    } catch (_) {
      // closing: onclose reconnects
    }
  }

  /** Close the current socket and connect again (after the usual backoff). */
  drop(code, reason) {
    if (this.ws) this.ws.close(code, reason);
  }

  /** Connect again after a backoff of at least backoffMs[minStep]. */
  retry(minStep) {
    if (this.stopped) return;
    this.retries = Math.max(this.retries, minStep || 0);
    const base = this.backoffMs[Math.min(this.retries, this.backoffMs.length - 1)];
    this.retries += 1;
    clearTimeout(this.timer);
    const delay = this.jitter ? base * (0.75 + Math.random() * 0.5) : base;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    window.removeEventListener("online", this.onOnline);
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= 1) ws.close(1000, "done");
  }
}
