import assert from "node:assert/strict";
import { test } from "node:test";

import { parseEvents } from "./client.js";

test("complete events are parsed and a partial one is kept for the next read", () => {
  const [events, rest] = parseEvents('event: delta\ndata: {"text":"Hel"}\n\nevent: delta\ndata: {"te');
  assert.deepEqual(events, [{ event: "delta", data: { text: "Hel" } }]);
  assert.equal(rest, 'event: delta\ndata: {"te');
  const [more, left] = parseEvents(rest + 'xt":"lo"}\n\nevent: reply\ndata: {"id":3,"content":"Hello"}\n\n');
  assert.deepEqual(more, [
    { event: "delta", data: { text: "lo" } },
    { event: "reply", data: { id: 3, content: "Hello" } },
  ]);
  assert.equal(left, "");
});

test("comments (keep-alives) are not events", () => {
  const [events] = parseEvents(": keep-alive\n\nevent: delta\ndata: {\"text\":\"x\"}\n\n");
  assert.deepEqual(events, [{ event: "delta", data: { text: "x" } }]);
});
