import assert from "node:assert/strict";
import { test } from "node:test";

import { itemIndices, itemStates } from "./items.js";

const ev = (item, event, inner, extra) => ({ type: "node_item", node: "each", item, event, inner, ...extra });

const EVENTS = [
  { type: "node_started", node: "each" },
  ev(1, "run_started"),
  ev(1, "node_started", "call"),
  ev(0, "node_started", "call"),
  ev(1, "node_delta", "call", { text: "fake " }),
  ev(1, "node_delta", "call", { text: "bee" }),
  { type: "node_item", node: "other", item: 3, event: "node_started", inner: "call" },
  ev(0, "node_failed", "call", { error: "boom" }),
  ev(0, "run_finished", undefined, { status: "failed" }),
];

test("the items of one map, in order", () => {
  assert.deepEqual(itemIndices(EVENTS, "each"), [0, 1]);
  assert.deepEqual(itemIndices(EVENTS, "other"), [3]);
  assert.deepEqual(itemIndices(EVENTS, "nothing"), []);
});

test("an item's inner nodes: running with their streamed text, or failed with the error", () => {
  assert.deepEqual(itemStates(EVENTS, "each", 1), [["call", { status: "running", text: "fake bee" }]]);
  assert.deepEqual(itemStates(EVENTS, "each", 0), [["call", { status: "failed", text: "boom" }]]);
});

test("an item that finished closes what it left open", () => {
  const events = [ev(2, "node_started", "call"), ev(2, "run_finished", undefined, { status: "cancelled" })];
  assert.deepEqual(itemStates(events, "each", 2), [["call", { status: "cancelled", text: "" }]]);
  const done = [ev(2, "node_started", "call"), ev(2, "node_finished", "call"), ev(2, "run_finished", undefined, { status: "succeeded" })];
  assert.deepEqual(itemStates(done, "each", 2), [["call", { status: "done", text: "" }]]);
});
