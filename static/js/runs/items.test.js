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

test("a map in a map: the inner map's items, below the outer item they ran in", () => {
  const nested = (outer, item, event, inner, extra) =>
    ev(outer, "node_item", "deep", { nested: { item, event, inner, ...extra } });
  const events = [
    ev(0, "node_started", "deep"),
    nested(0, 0, "node_started", "call"),
    nested(0, 0, "node_delta", "call", { text: "ant" }),
    nested(0, 1, "node_started", "call"),
    nested(1, 0, "node_started", "call"),
    nested(1, 0, "node_failed", "call", { error: "boom" }),
    nested(0, 0, "node_finished", "call"),
    { type: "node_item", node: "each", item: 0, event: "node_item", inner: "other", nested: { item: 5, event: "node_started", inner: "call" } },
  ];
  assert.deepEqual(itemIndices(events, "deep", [["each", 0]]), [0, 1]);
  assert.deepEqual(itemIndices(events, "deep", [["each", 1]]), [0]);
  assert.deepEqual(itemIndices(events, "other", [["each", 0]]), [5]);
  assert.deepEqual(itemStates(events, "deep", 0, [["each", 0]]), [["call", { status: "done", text: "ant" }]]);
  assert.deepEqual(itemStates(events, "deep", 0, [["each", 1]]), [["call", { status: "failed", text: "boom" }]]);
  // The outer item itself sees its inner map as one of its nodes, running.
  assert.deepEqual(itemStates(events, "each", 0), [
    ["deep", { status: "running", text: "" }],
    ["other", { status: "running", text: "" }],
  ]);
  // Three levels: nested twice.
  const twice = [ev(0, "node_item", "deep", { nested: { item: 2, event: "node_item", inner: "deeper", nested: { item: 4, event: "node_started", inner: "x" } } })];
  assert.deepEqual(itemIndices(twice, "deeper", [["each", 0], ["deep", 2]]), [4]);
  assert.deepEqual(itemIndices(twice, "deeper", [["each", 0], ["deep", 1]]), []);
});
