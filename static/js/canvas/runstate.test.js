import assert from "node:assert/strict";
import { test } from "node:test";

import { normalState, runKey } from "./runstate.js";

test("a run state is normalised: known status, text capped, numbers, three badges", () => {
  const s = normalState({ status: "exploded", text: "x".repeat(5000), done: "2", badges: [1, 2, 3, 4] });
  assert.equal(s.status, "idle");
  assert.equal(s.text.length, 4000);
  assert.deepEqual([s.done, s.total, s.iteration], [2, 0, 0]);
  assert.equal(s.badges.length, 3);
});

test("equal run states have equal keys, so nothing is redrawn", () => {
  const a = normalState({ status: "done", text: "hi", badges: [{ kind: "cost", text: "$1.00" }] });
  const b = normalState({ status: "done", text: "hi", badges: [{ kind: "cost", text: "$1.00" }] });
  assert.equal(runKey(a), runKey(b));
  assert.notEqual(runKey(a), runKey({ ...a, text: "hi!" }));
  assert.equal(runKey(undefined), "");
});
