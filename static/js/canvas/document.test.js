import assert from "node:assert/strict";
import { test } from "node:test";

import { edgeDoc, edgeMeta, framing, nextId, nodeMeta, uniqueName } from "./document.js";
import { baseHeight } from "./shapes.js";

test("a document node becomes an sy-node with its ports and rows", () => {
  const doc = { id: "write", type: "llm", config: { prompt: "{{ topic }}" }, position: { x: 5, y: 7 }, label: "Write" };
  const edges = [{ source: "topic", target: "write", source_port: "value", target_port: "topic" }];
  const meta = nodeMeta(doc, edges, { inputs: ["topic"], outputs: ["text"] });
  assert.equal(meta.shape, "sy-node");
  assert.deepEqual([meta.x, meta.y, meta.height], [5, 7, baseHeight(1)]);
  assert.deepEqual(meta.data, { type: "llm", config: { prompt: "{{ topic }}" }, label: "Write", rows: 1 });
  assert.deepEqual(meta.ports.items.map((p) => p.id), ["in:topic", "out:text"]);
  assert.equal(meta.attrs.frame.class, "sy-node t-llm st-idle");
  assert.equal(meta.attrs.title.text, "Write");
});

test("a document edge joins an output port to an input port", () => {
  assert.deepEqual(edgeMeta({ source: "a", target: "b", source_port: "text", target_port: "q" }), {
    shape: "sy-edge",
    source: { cell: "a", port: "out:text" },
    target: { cell: "b", port: "in:q" },
  });
});

test("a loop-back edge's initial and append go through the canvas untouched", () => {
  const doc = { source: "route", target: "gen", source_port: "rejected", target_port: "feedback", key: 0, initial: [], append: true };
  const meta = edgeMeta(doc);
  assert.deepEqual(meta.data, { kept: { initial: [], append: true } });
  const drawn = {
    getSourceCellId: () => meta.source.cell,
    getTargetCellId: () => meta.target.cell,
    getSourcePortId: () => meta.source.port,
    getTargetPortId: () => meta.target.port,
    getData: () => meta.data,
  };
  assert.deepEqual(edgeDoc(drawn), { source: "route", target: "gen", source_port: "rejected", target_port: "feedback", initial: [], append: true });
});

test("a loop-back edge is drawn with its setting; a plain edge with no label", () => {
  const plain = { source: "a", target: "b", source_port: "text", target_port: "q" };
  assert.equal(edgeMeta(plain).labels, undefined);
  const seeded = edgeMeta({ ...plain, initial: "none yet" });
  assert.deepEqual(seeded.labels.map((l) => l.attrs.label.text), ['initial: "none yet"']);
  assert.deepEqual(edgeMeta({ ...plain, append: true }).labels.map((l) => l.attrs.label.text), ["+="]);
});

test("a new node's id takes the next number of its type", () => {
  assert.equal(nextId("llm", ["llm1", "llm7", "input1"]), "llm8");
  assert.equal(nextId("llm", []), "llm1");
  assert.equal(nextId("??", []), "node1");
});

test("a name already taken gets the next free suffix", () => {
  assert.equal(uniqueName("topic", new Set()), "topic");
  assert.equal(uniqueName("topic", new Set(["topic", "topic_2"])), "topic_3");
});

test("a small flow is framed whole and centred; a big one from its start at a readable zoom", () => {
  const area = { width: 800, height: 600 };
  const small = framing([{ x: 0, y: 0, width: 200, height: 100 }], area);
  assert.deepEqual(small, { scale: 1, tx: 300, ty: 250 });
  const wide = [{ x: 100, y: 0, width: 4000, height: 100 }];
  assert.deepEqual(framing(wide, area), { scale: 0.85, tx: 48 - 85, ty: 300 - 42.5 });
  assert.ok(framing(wide, area, { all: true }).scale < 0.5);
  assert.deepEqual(framing([], area), { scale: 1, tx: 40, ty: 40 });
});
