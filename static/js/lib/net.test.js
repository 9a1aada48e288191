import assert from "node:assert/strict";
import { beforeEach, mock, test } from "node:test";

import { PING, ReconnectingSocket } from "./net.js";

// A scripted WebSocket: the test opens it, delivers frames and closes it.
let sockets = [];
class ScriptedSocket {
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.readyState = 0;
    sockets.push(this);
  }
  send(text) {
    this.sent.push(text);
  }
  close(code) {
    this.finish(code || 1000);
  }
  open() {
    this.readyState = 1;
    this.onopen && this.onopen({});
  }
  deliver(data) {
    this.onmessage({ data: JSON.stringify(data) });
  }
  finish(code) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose && this.onclose({ code });
  }
}
ScriptedSocket.OPEN = 1;
globalThis.WebSocket = ScriptedSocket;
globalThis.window = new EventTarget();

beforeEach(() => {
  sockets = [];
  mock.timers.reset();
  mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"] });
});

function follow(options, handlers) {
  let after = 0;
  const seen = [];
  const closes = [];
  const socket = new ReconnectingSocket(
    () => "ws://host/ws/runs/7/?after=" + after,
    {
      message: (data) => {
        seen.push(data.n);
        after = data.n;
      },
      close: (event) => closes.push(event.code),
      ...handlers,
    },
    { jitter: false, ...options },
  );
  return { socket, seen, closes };
}

test("a dropped socket comes back after its backoff, asking from where it was", () => {
  const { socket, seen, closes } = follow({ backoffMs: [100, 200] });
  sockets[0].open();
  sockets[0].deliver({ n: 3 });
  sockets[0].finish(1006);
  mock.timers.tick(99);
  assert.equal(sockets.length, 1);
  mock.timers.tick(1);
  assert.deepEqual(sockets.map((s) => s.url.split("after=")[1]), ["0", "3"]);
  // Refused again: the next wait is longer.
  sockets[1].finish(1006);
  mock.timers.tick(199);
  assert.equal(sockets.length, 2);
  mock.timers.tick(1);
  assert.equal(sockets.length, 3);
  assert.deepEqual(seen, [3]);
  assert.deepEqual(closes, [1006, 1006]);
  socket.stop();
});

test("a slow code starts the backoff further on", () => {
  const { socket } = follow({ backoffMs: [100, 200, 400], slowCodes: { 4503: 2 } });
  sockets[0].open();
  sockets[0].finish(4503);
  mock.timers.tick(399);
  assert.equal(sockets.length, 1);
  mock.timers.tick(1);
  assert.equal(sockets.length, 2);
  socket.stop();
});

test("a final code ends it: no reconnect, and the handler hears why", () => {
  const { socket, closes } = follow({ backoffMs: [100] });
  sockets[0].open();
  sockets[0].finish(4403);
  mock.timers.tick(10_000);
  assert.equal(sockets.length, 1);
  assert.deepEqual(closes, [4403]);
  assert.equal(socket.stopped, true);
});

test("a quiet open socket pings; one that hears from the server does not", () => {
  const { socket } = follow({ pingMs: 3000 });
  sockets[0].open();
  mock.timers.tick(2000);
  sockets[0].deliver({ n: 1 });
  mock.timers.tick(2000);
  assert.deepEqual(sockets[0].sent, []);
  mock.timers.tick(1000);
  assert.deepEqual(sockets[0].sent, [PING]);
  socket.stop();
  mock.timers.tick(10_000);
  assert.deepEqual(sockets[0].sent, [PING]);
});

test("stopping closes the socket and nothing comes back", () => {
  const { socket } = follow({ backoffMs: [100] });
  sockets[0].open();
  socket.stop();
  assert.equal(sockets[0].readyState, 3);
  mock.timers.tick(10_000);
  assert.equal(sockets.length, 1);
});

test("the browser coming back online reconnects at once", () => {
  const { socket } = follow({ backoffMs: [5000] });
  sockets[0].finish(1006);
  window.dispatchEvent(new Event("online"));
  assert.equal(sockets.length, 2);
  socket.stop();
});
