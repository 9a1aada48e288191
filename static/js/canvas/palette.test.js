import assert from "node:assert/strict";
import { test } from "node:test";

import { freeSpot, matches } from "./palette.js";

const size = { width: 210, height: 80 };
const hits = (a, b) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;

test("on an empty canvas a new node is centred on the view's centre", () => {
  assert.deepEqual(freeSpot([], { x: 500, y: 300 }, size), { x: 395, y: 260 });
});

test("a new node never lands on another, and stays near the centre", () => {
  const boxes = [{ x: 395, y: 260, width: 210, height: 80 }];
  const spots = [];
  for (let i = 0; i < 12; i++) {
    const at = freeSpot(boxes, { x: 500, y: 300 }, size);
    for (const b of boxes) assert.ok(!hits({ ...at, ...size }, b), `${JSON.stringify(at)} overlaps ${JSON.stringify(b)}`);
    assert.ok(Math.hypot(at.x - 395, at.y - 260) < 1000);
    boxes.push({ ...at, ...size });
    spots.push(at);
  }
  assert.equal(new Set(spots.map((s) => `${s.x},${s.y}`)).size, 12);
});

test("search matches every word in the type, label, category or help text", () => {
  const llm = { type: "llm", label: "LLM call", category: "model", description: "Calls a model with a prompt" };
  assert.ok(matches(llm, "llm"));
  assert.ok(matches(llm, "PROMPT model"));
  assert.ok(matches(llm, ""));
  assert.ok(!matches(llm, "prompt regex"));
});

test("with a view, a new node goes to the nearest free cell inside it", () => {
  const view = { x: 0, y: 0, width: 700, height: 700 };
  const tall = { width: 210, height: 160 };
  const boxes = [{ x: 245, y: 270, width: 210, height: 160 }];
  for (let i = 0; i < 5; i++) {
    const at = freeSpot(boxes, { x: 350, y: 350 }, i < 1 ? tall : size, undefined, view);
    for (const b of boxes) assert.ok(!hits({ ...at, ...size }, b));
    assert.ok(at.x >= 0 && at.y >= 0 && at.x + 210 <= 700, JSON.stringify(at));
    boxes.push({ ...at, ...(i < 1 ? tall : size) });
  }
});
