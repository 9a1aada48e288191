import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { test } from "node:test";

import { RunModel, itemsText, nodeBadges, preview, providerCache } from "./model.js";

const LOGS = new URL("../../../tests/fixtures/logs/", import.meta.url);
const GOLDEN = readdirSync(LOGS)
  .filter((file) => file.endsWith(".json"))
  .sort()
  .map((file) => [file.slice(0, -".json".length), JSON.parse(readFileSync(new URL(file, LOGS), "utf8"))]);

let seq = 0;
const ev = (e) => ({ seq: ++seq, ts: 1000 + seq, ...e });

function shortRun() {
  seq = 0;
  return [
    ev({ type: "run_started", schema: 1 }),
    ev({ type: "node_started", node: "a", iteration: 1, inputs: {} }),
    ev({ type: "node_delta", node: "a", iteration: 1, text: "Hello " }),
    ev({ type: "node_delta", node: "a", iteration: 1, text: "world" }),
    ev({
      type: "node_finished", node: "a", iteration: 1, output: { text: "Hello world" }, duration_s: 1.5,
      usage: { input_tokens: 5, output_tokens: 2 }, cost_usd: 0.0042,
    }),
    ev({ type: "node_started", node: "b", iteration: 2, inputs: {} }),
    ev({ type: "node_finished", node: "b", iteration: 2, output: { value: [1, 2] }, cached: { source: "run 7" }, saved_usd: 0.5 }),
    ev({ type: "node_skipped", node: "c", iteration: 1 }),
    ev({ type: "run_finished", status: "succeeded", outputs: {}, usage: { input_tokens: 5, output_tokens: 2 } }),
  ];
}

test("a short run folds into the run's and each node's state", () => {
  const model = new RunModel(() => ["a", "b", "c", "d"]);
  for (const event of shortRun()) assert.equal(model.apply(event), true);
  assert.equal(model.status, "succeeded");
  assert.equal(model.finished, true);
  assert.equal(model.lastSeq, 9);
  assert.equal(model.startTs, 1001);
  assert.equal(model.endTs, 1009);
  assert.deepEqual(model.usage, { input_tokens: 5, output_tokens: 2 });
  assert.equal(model.cost, 0.0042);
  const a = model.nodes.get("a");
  assert.equal(a.status, "done");
  assert.equal(a.text, "Hello world"); // streamed: the output does not replace it
  assert.equal(a.duration, 1.5);
  assert.equal(a.iteration, 1);
  const b = model.nodes.get("b");
  assert.equal(b.text, "[\n 1,\n 2\n]"); // not streamed: a preview of its output
  assert.equal(b.iteration, 2);
  assert.deepEqual(b.cached, { source: "run 7", saved: 0.5 });
  assert.equal(model.nodes.get("c").status, "skipped");
  // Queued when the run started, never reached: idle again once it finished.
  assert.equal(model.nodes.get("d").status, "idle");
  assert.deepEqual([...model.carried.values()], [["a", "text"], ["b", "value"]]);
});

test("an event at or below the last seq is not applied again", () => {
  const model = new RunModel(() => ["a"]);
  const events = shortRun();
  for (const event of events.slice(0, 4)) model.apply(event);
  assert.equal(model.apply({ ...events[2] }), false);
  assert.equal(model.nodes.get("a").text, "Hello world");
});

test("changes name each node once per paint, with only its new text", () => {
  const model = new RunModel(() => ["a"]);
  const events = shortRun();
  for (const event of events.slice(0, 2)) model.apply(event);
  const first = model.takeChanges();
  assert.equal(first.reset, true);
  assert.equal(first.run, true);
  assert.deepEqual(first.nodes.map(([id]) => id), ["a"]);
  for (const event of events.slice(2, 4)) model.apply(event);
  const second = model.takeChanges();
  assert.equal(second.reset, false);
  assert.equal(second.nodes.length, 1);
  assert.equal(second.nodes[0][1].append, "Hello world");
  assert.equal(second.nodes[0][1].statusChanged, false);
  model.apply(events[4]);
  const third = model.takeChanges();
  assert.deepEqual(third.marks, [["a", "text"]]);
  assert.deepEqual(third.nodes[0][1].badges.map((b) => b.text), ["$0.0042"]);
  assert.deepEqual(model.takeChanges().nodes, []);
});

test("a failed node keeps its error; a cancelled one shows none", () => {
  const model = new RunModel(() => ["a", "b"]);
  model.apply({ seq: 1, type: "run_started" });
  model.apply({ seq: 2, type: "node_started", node: "a", iteration: 1 });
  model.apply({ seq: 3, type: "node_failed", node: "a", iteration: 1, error: "boom" });
  model.apply({ seq: 4, type: "node_started", node: "b", iteration: 1 });
  model.apply({ seq: 5, type: "node_failed", node: "b", iteration: 1, error: "stop", cancelled: true });
  model.apply({ seq: 6, type: "run_finished", status: "failed", error: "a failed" });
  assert.deepEqual([model.nodes.get("a").status, model.nodes.get("a").note], ["failed", "boom"]);
  assert.deepEqual([model.nodes.get("b").status, model.nodes.get("b").note], ["cancelled", ""]);
  assert.equal(model.error, "a failed");
});

test("a node still running when the run finishes is cancelled", () => {
  const model = new RunModel(() => ["a"]);
  model.apply({ seq: 1, type: "run_started" });
  model.apply({ seq: 2, type: "node_started", node: "a", iteration: 1 });
  model.apply({ seq: 3, type: "run_finished", status: "cancelled" });
  assert.equal(model.nodes.get("a").status, "cancelled");
});

test("a retry clears the streamed text and says why", () => {
  const model = new RunModel(() => ["a"]);
  model.apply({ seq: 1, type: "run_started" });
  model.apply({ seq: 2, type: "node_started", node: "a", iteration: 1 });
  model.apply({ seq: 3, type: "node_delta", node: "a", iteration: 1, text: "half" });
  model.apply({ seq: 4, type: "node_retrying", node: "a", iteration: 1, attempt: 1, error: "overloaded" });
  const a = model.nodes.get("a");
  assert.equal(a.text, "");
  assert.equal(a.note, "retrying: attempt 1 failed (overloaded)");
});

test("a restored snapshot folds on as the model it was taken from", () => {
  const events = shortRun();
  const model = new RunModel(() => ["a", "b"]);
  for (const event of events.slice(0, 3)) model.apply(event);
  const restored = RunModel.restore(model.snapshot(), () => ["a", "b"]);
  for (const event of events.slice(3)) {
    model.apply(event);
    restored.apply(event);
  }
  assert.deepEqual(restored.fullChanges(), model.fullChanges());
  assert.equal(restored.status, model.status);
});

test("an output preview is its one value, or the JSON of them all, cut at 4000 characters", () => {
  assert.equal(preview({ text: "hi" }), "hi");
  assert.equal(preview({ a: 1, b: 2 }), '{\n "a": 1,\n "b": 2\n}');
  assert.equal(preview(null), "");
  assert.equal(preview({ text: "x".repeat(5000) }).length, 4001);
});

test("badges say what a node cost and where its output came from", () => {
  const badges = nodeBadges({ cost: 0.5, iteration: 2, cached: null, reused: { source: "run 3", saved: null } });
  assert.deepEqual(badges, [
    { kind: "cost", text: "$0.5", title: "Model cost of this node, all iterations" },
    { kind: "reused", text: "reused", title: "Output reused from run 3; the node did not run" },
  ]);
});

// The golden logs (tests/fixtures/logs) hold graphs/log.py and log.js to one fold; what the
// pages paint must say what that fold says.

/** A canvas that keeps what it is told, as view.js tells the real one. */
function paintInto(canvas, changes) {
  if (changes.reset) canvas.clear();
  for (const [id, change] of changes.nodes) {
    const node = canvas.get(id) || { text: "", badges: [] };
    if (changes.full || change.setText !== undefined) node.text = changes.full ? change.text : change.setText;
    else if (change.append) node.text += change.append;
    node.status = change.status;
    node.iteration = change.iteration;
    if (changes.full || change.badges) node.badges = change.badges;
    canvas.set(id, node);
  }
}

/** The look the fold's expectation asks for: a node's last visit, its cost over all visits. */
function expectedLooks(events, expected) {
  const lastIteration = new Map();
  for (const event of events) if (event.node) lastIteration.set(event.node, event.iteration || 1);
  const over = expected.status !== "waiting";
  const looks = {};
  for (const [id, visits] of Object.entries(expected.nodes)) {
    const last = visits.find((visit) => visit.iteration === lastIteration.get(id));
    const done = visits.filter((visit) => visit.status === "done").pop();
    const costs = visits.map((visit) => visit.cost_usd).filter((cost) => typeof cost === "number");
    const kinds = [];
    if (costs.length) kinds.push("cost");
    if (done && done.cached) kinds.push("cached");
    const usage = (done && done.usage) || {};
    if (usage.cache_read_input_tokens || usage.cache_creation_input_tokens) kinds.push("provider-cache");
    if (done && done.reused) kinds.push("reused");
    // The run is over: a visit it left open was stopped (a parked run is not over).
    const status = last.status === "running" && over ? "cancelled" : last.status;
    looks[id] = {
      status: status, iteration: last.iteration, badges: kinds,
      cost: costs.length ? costs.reduce((a, b) => a + b, 0) : null,
      source: done && (done.cached || done.reused) ? (done.cached || done.reused).source : null,
    };
  }
  // In the flow, never reached: idle once the run is over, queued while it waits.
  looks.never = { status: over ? "idle" : "queued", iteration: 0, badges: [], cost: null, source: null };
  return looks;
}

for (const [name, { events, fold: expected }] of GOLDEN) {
  test(`the ${name} log is painted as the shared fold has it`, () => {
    const model = new RunModel(() => [...Object.keys(expected.nodes), "never"]);
    const canvas = new Map();
    events.forEach((event, i) => {
      assert.equal(model.apply(event), true);
      if (i % 3 === 0) paintInto(canvas, model.takeChanges());
    });
    paintInto(canvas, model.takeChanges());

    assert.equal(model.status, expected.status);
    assert.equal(model.cost, expected.cost_usd);
    assert.deepEqual(model.usage, expected.usage);
    assert.equal(model.startTs, expected.started_ts);
    assert.equal(model.endTs, expected.finished_ts);
    assert.equal(model.lastSeq, expected.last_seq);
    const looks = expectedLooks(events, expected);
    assert.deepEqual(new Set(model.nodes.keys()), new Set(Object.keys(looks)));
    for (const [id, want] of Object.entries(looks)) {
      const n = model.nodes.get(id);
      const badges = nodeBadges(n);
      const got = {
        status: n.status, iteration: n.iteration, badges: badges.map((b) => b.kind), cost: n.cost,
        source: (n.cached || n.reused || { source: null }).source,
      };
      assert.deepEqual(got, want, id);
      // Painted a few events at a time, the canvas ends as a whole paint would draw it.
      const painted = canvas.get(id) || { text: "", status: "idle", iteration: 0, badges: [] };
      assert.deepEqual(painted, { text: n.text, status: n.status, iteration: n.iteration, badges: badges }, id);
    }
  });

  test(`the ${name} log restored at any event paints as if folded through`, () => {
    const nodeIds = () => Object.keys(expected.nodes);
    const model = new RunModel(nodeIds);
    const snapshots = [model.snapshot()];
    for (const event of events) {
      model.apply(event);
      snapshots.push(model.snapshot());
    }
    const end = model.fullChanges();
    snapshots.forEach((snapshot, i) => {
      const restored = RunModel.restore(snapshot, nodeIds);
      for (const event of events.slice(i)) restored.apply(event);
      assert.deepEqual(restored.fullChanges(), end, "restored at " + i);
    });
  });
}

const goldenLog = (name) => GOLDEN.find(([n]) => n === name)[1].events;

test("a map shows its items as they go: the count, then each running item's node and text", () => {
  const events = goldenLog("map_items");
  const model = new RunModel(() => ["words", "task", "each", "out"]);
  // The map's text as the canvas paints it, after each change.
  const seen = [];
  let painted = "";
  for (const event of events) {
    model.apply(event);
    for (const [id, change] of model.takeChanges().nodes) {
      if (id !== "each") continue;
      if (change.setText !== undefined) painted = change.setText;
      else if (change.append) painted += change.append;
      seen.push(painted);
    }
  }
  const streaming = seen.find((text) => text.includes("#0 work: ") && text.includes("Define: alpha"));
  assert.ok(streaming, seen.join("\n---\n"));
  assert.ok(streaming.startsWith("items: 1 running"), streaming);
  assert.ok(seen.some((text) => text.startsWith("items: 1 done, 1 running\n#1 work")), seen.join("\n---\n"));
  // Once done, the map shows its results, as before.
  assert.ok(model.nodes.get("each").text.includes("Define: gamma"));
});

test("a map that failed keeps its items on show, the failed one with its error", () => {
  const model = new RunModel(() => ["things", "each", "out"]);
  for (const event of goldenLog("map_item_failure")) model.apply(event);
  const each = model.nodes.get("each");
  assert.equal(each.status, "failed");
  assert.equal(each.text.split("\n")[0], "items: 1 done, 1 failed");
  assert.match(each.text, /^#1 failed: node 't' failed: template/m);
});

test("items text puts running items after the count, in index order, on one line each", () => {
  const usage = { input_tokens: 0, output_tokens: 0 };
  const text = itemsText({
    10: { status: "running", node: "ask", text: "line one\nline two", error: "", usage },
    2: { status: "running", node: null, text: "", error: "", usage },
    3: { status: "done", node: "ask", text: "x", error: "", usage },
  });
  assert.equal(text, "items: 1 done, 2 running\n#2\n#10 ask: line one line two");
  assert.equal(itemsText(null), "");
});

test("a thinking node says so, and its canvas text is only ever the answer", () => {
  const model = new RunModel(() => ["a"]);
  model.apply({ seq: 1, type: "run_started" });
  model.apply({ seq: 2, type: "node_started", node: "a", iteration: 1 });
  model.apply({ seq: 3, type: "node_thinking", node: "a", iteration: 1, text: "let me see" });
  let a = model.nodes.get("a");
  assert.deepStrictEqual([a.status, a.text, a.note], ["running", "", "thinking…"]);
  model.apply({ seq: 4, type: "node_delta", node: "a", iteration: 1, text: "391" });
  a = model.nodes.get("a");
  assert.deepStrictEqual([a.text, a.note], ["391", ""]);
});

test("a node that used the provider's prompt cache says how much it read and saved", () => {
  const { events } = new Map(GOLDEN).get("prompt_cache");
  const model = new RunModel(() => ["q", "each", "out"]);
  for (const event of events) model.apply(event);
  const badge = nodeBadges(model.nodes.get("each")).find((b) => b.kind === "provider-cache");
  // 1,602 of 2,409 prompt tokens read (the two items after the first); saved as recorded.
  assert.deepEqual(badge, { kind: "provider-cache", text: "cache 67%", title: "provider cache: 67% read, saved $0.003725" });
  assert.equal(providerCache({ usage: { input_tokens: 3 } }), null);
  assert.deepEqual(providerCache({ usage: { input_tokens: 10, cache_creation_input_tokens: 90 }, provider_saved_usd: -0.5 }), { read: 0, saved: -0.5 });
});

test("the run's provider-cache figures follow the fold, for the run page's live view", () => {
  const { events } = new Map(GOLDEN).get("prompt_cache");
  const model = new RunModel(() => ["q", "each", "out"]);
  assert.equal(model.providerCacheText, "");
  for (const event of events) model.apply(event);
  assert.equal(model.providerCacheText, "provider cache: 67% read, saved $0.003725");
});

test("a parked run going on is the same run: no reset, its marks kept, its status waiting then running", () => {
  const { events } = GOLDEN.find(([name]) => name === "approval")[1];
  const model = new RunModel(() => ["q", "ask", "yes", "no", "out"]);
  const resumed = events.findIndex((event) => event.type === "node_resumed");
  for (const event of events.slice(0, resumed)) model.apply(event);
  model.takeChanges();
  assert.equal(model.status, "waiting");
  assert.equal(model.nodes.get("ask").status, "waiting");
  model.apply(events[resumed]);
  const changes = model.takeChanges();
  assert.equal(changes.reset, false);
  assert.equal(changes.run, true);
  assert.equal(model.status, "running");
  assert.equal(model.nodes.get("ask").status, "running");
  assert.equal(model.nodes.get("q").status, "done", "what ran before the wait stays painted");
});
