// The browser's fold against the golden logs that also hold graphs/log.py:
// node --test static/js/runs/log.test.js (no packages; Node's own test runner).
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { test } from "node:test";

import { RunLog, fold, origin } from "./log.js";

const LOGS = new URL("../../../tests/fixtures/logs/", import.meta.url);
const golden = (name) => JSON.parse(readFileSync(new URL(name + ".json", LOGS), "utf8"));
const NAMES = readdirSync(LOGS)
  .filter((file) => file.endsWith(".json"))
  .map((file) => file.slice(0, -".json".length))
  .sort();

test("the golden logs are there to check against", () => {
  assert.ok(NAMES.length >= 13, NAMES.join(", "));
});

for (const name of NAMES) {
  test(`the ${name} log folds to the state the Python fold recorded`, () => {
    const { events, fold: expected } = golden(name);
    // Through JSON, as a page would send it on: exactly the Python to_json().
    assert.deepStrictEqual(JSON.parse(JSON.stringify(fold(events))), expected);
  });

  test(`the ${name} log folded event by event matches the whole fold at every step`, () => {
    const { events } = golden(name);
    const log = new RunLog();
    events.forEach((event, i) => {
      assert.equal(log.apply(event), true);
      assert.deepStrictEqual(log.toJSON(), fold(events.slice(0, i + 1)).toJSON());
    });
  });
}

test("an event seen again changes nothing", () => {
  const log = new RunLog();
  const delta = { seq: 2, type: "node_delta", node: "a", iteration: 1, text: "x" };
  assert.equal(log.apply({ seq: 1, type: "run_started" }), true);
  assert.equal(log.apply(delta), true);
  assert.equal(log.apply(delta), false);
  assert.equal(log.visits("a")[0].text, "x");
});

test("open visits and final states read as in Python", () => {
  const log = fold([
    { type: "node_started", node: "a" },
    { type: "node_started", node: "b", iteration: 2 },
    { type: "node_finished", node: "a" },
  ]);
  assert.deepStrictEqual(log.openVisits(), [["b", 2]]);
  assert.deepStrictEqual(log.finalStates(), { a: "done", b: "running" });
  assert.equal(log.lastVisit("b").iteration, 2);
});

test("a source given as text or as a run id reads as both", () => {
  assert.deepStrictEqual(origin({ source: "run 42" }), { source: "run 42", run: 42 });
  assert.deepStrictEqual(origin({ run: 7 }), { source: "run 7", run: 7 });
  assert.equal(origin(null), null);
});

for (const name of NAMES) {
  test(`the ${name} log copied at any event folds on apart from its copy`, () => {
    const { events, fold: expected } = golden(name);
    events.forEach((_, i) => {
      const log = fold(events.slice(0, i));
      const copy = log.copy();
      const before = log.toJSON();
      for (const event of events.slice(i)) copy.apply(event);
      assert.deepStrictEqual(JSON.parse(JSON.stringify(copy)), expected);
      assert.deepStrictEqual(log.toJSON(), before, "the copy changed the log at " + i);
      for (const event of events.slice(i)) log.apply(event);
      assert.deepStrictEqual(JSON.parse(JSON.stringify(log)), expected);
    });
  });
}

test("a retried or restarted map starts its items afresh, as in Python", () => {
  const item = { type: "node_item", node: "m", iteration: 1, item: 0 };
  const log = fold([
    { type: "node_started", node: "m" },
    { ...item, event: "node_delta", inner: "ask", text: "first try" },
    { type: "node_retrying", node: "m", attempt: 1, error: "x" },
  ]);
  assert.equal(log.lastVisit("m").items, null);
  log.apply({ ...item, event: "node_delta", inner: "ask", text: "again" });
  assert.equal(log.lastVisit("m").items["0"].text, "again");
  log.apply({ type: "node_started", node: "m" });
  assert.equal(log.toJSON().nodes.m[0].items, null);
});

test("thinking folds apart from the text, and its tokens join the totals, as in Python", () => {
  const solve = fold(golden("thinking").events).lastVisit("solve");
  assert.ok(solve.thinking.startsWith("fake thinking about: What is 17*23?"));
  assert.ok(!solve.text.includes("thinking") && solve.text.endsWith("tool results: 391"));
  const log = fold([
    { type: "run_started", ts: 1 },
    { type: "node_started", node: "a" },
    { type: "node_thinking", node: "a", text: "first " },
    { type: "node_retrying", node: "a", attempt: 1 },
    { type: "node_thinking", node: "a", text: "second " },
    { type: "node_thinking", node: "a", text: "try" },
    { type: "node_delta", node: "a", text: "answer" },
    { type: "node_finished", node: "b", usage: { input_tokens: 1, output_tokens: 1 } },
    { type: "node_finished", node: "a", usage: { input_tokens: 1, output_tokens: 9, thinking_tokens: 7 } },
  ]);
  const visit = log.lastVisit("a");
  assert.deepStrictEqual([visit.thinking, visit.text], ["second try", "answer"]);
  assert.deepStrictEqual(log.usage, { input_tokens: 2, output_tokens: 10, thinking_tokens: 7 });
});

test("a breakpoint shows the paused inputs, then the edited ones the node ran on", () => {
  const { events } = golden("breakpoint");
  const paused = events.findIndex((event) => event.type === "node_waiting") + 1;
  const visit = fold(events.slice(0, paused)).lastVisit("a");
  assert.deepStrictEqual([visit.status, visit.inputs], ["waiting", { x: "hi" }]);
  assert.equal(visit.detail.wait.kind, "breakpoint");
  const resumed = fold(events.slice(0, paused + 1)).lastVisit("a");
  assert.deepStrictEqual([resumed.status, resumed.inputs], ["running", { x: "edited" }]);
  const answered = fold(events);
  assert.deepStrictEqual(answered.lastVisit("a").inputs, { x: "edited" });
  assert.deepStrictEqual(answered.outputs, { answer: "b(a(edited))" });
});

test("a parked node folds as waiting, with what it waits for, until its answer", () => {
  const { events } = golden("approval");
  const parked = events.findIndex((event) => event.type === "node_waiting") + 1;
  const log = fold(events.slice(0, parked));
  assert.equal(log.finalStates().ask, "waiting");
  assert.equal(log.lastVisit("ask").detail.wait.message, "Refund 12 EUR?");
  assert.deepStrictEqual(log.openVisits(), [["ask", 1]]);
  const answered = fold(events);
  assert.equal(answered.finalStates().ask, "done");
  assert.deepStrictEqual(answered.lastVisit("ask").detail.by, { user: "bob" });
});

test("a budget pause folds its figures until the raise resumes the run, as in Python", () => {
  const { events } = golden("budget");
  const pausedAt = events.findIndex((event) => event.type === "run_paused") + 1;
  const log = fold(events.slice(0, pausedAt));
  assert.deepStrictEqual(log.toJSON().paused, {
    node: "ask2", iteration: 1, spent_usd: 46, remaining_usd: 4, needed_usd: 24, budget_usd: 50,
  });
  assert.equal(log.budgetUsd, 50);
  assert.equal(log.finalStates().ask2, "waiting");
  const resumed = fold(events);
  assert.equal(resumed.paused, null);
  assert.equal(resumed.budgetUsd, 100);
  assert.equal(resumed.finalStates().ask2, "done");
});

/** seq -> the run's status once that event is folded in, one event at a time. */
function statuses(events) {
  const log = new RunLog();
  const seen = {};
  for (const event of events) {
    log.apply(event);
    seen[event.seq] = log.status;
  }
  return seen;
}
const seqOf = (events, type, node) => events.find((e) => e.type === type && e.node === node).seq;

test("a parked run reads waiting until its answer, then running to its end, as in Python", () => {
  const { events } = golden("approval");
  const seen = statuses(events);
  assert.equal(seen[seqOf(events, "node_started", "ask")], "running");
  assert.equal(seen[seqOf(events, "node_waiting", "ask")], "waiting");
  assert.equal(seen[seqOf(events, "node_resumed", "ask")], "running");
  assert.equal(seen[events.at(-1).seq], "succeeded");
});

test("a run waits only while every open visit waits, as in Python", () => {
  const { events, fold: expected } = golden("approval_parked");
  const seen = statuses(events);
  assert.equal(seen[seqOf(events, "node_started", "note")], "running");
  const resumed = seqOf(events, "node_resumed", "ask");
  assert.equal(seen[resumed - 1], "waiting");
  assert.equal(seen[resumed], "running");
  assert.equal(expected.status, "waiting");
  // A copy taken while waiting goes on on its own (a replay's seek point).
  const parked = fold(events.slice(0, resumed - 1));
  const copy = parked.copy();
  copy.apply(events[resumed - 1]);
  assert.equal(copy.status, "running");
  assert.equal(parked.status, "waiting");
});

test("a map in a map reads the inner map's items in the outer item, as in Python", () => {
  const { events } = golden("map_nested");
  const items = fold(events).toJSON().nodes.each[0].items;
  assert.deepStrictEqual(Object.keys(items), ["0"]);
  const deep = items["0"].maps.deep;
  assert.deepStrictEqual(Object.keys(deep).sort(), ["0", "1"]);
  assert.equal(deep["1"].status, "done");
  assert.ok(deep["1"].text.endsWith("Spell bee"));
  // The inner map starting again starts its items afresh.
  const log = fold(events.slice(0, 12));
  assert.ok(log.lastVisit("each").items["0"].maps.deep["0"]);
  log.apply({ seq: 100, type: "node_item", node: "each", iteration: 1, item: 0, event: "node_started", inner: "deep" });
  assert.deepStrictEqual(log.toJSON().nodes.each[0].items["0"].maps, {});
});
