import assert from "node:assert/strict";
import { test } from "node:test";

import { displayName, documentChanges, nameWithKey } from "./keys.js";

test("a node is shown by its label, an input or output by its name, else its key", () => {
  assert.equal(displayName({ id: "llm1", type: "llm", label: "Writer" }), "Writer");
  assert.equal(displayName({ id: "input1", type: "input", config: { name: "question" } }), "question");
  assert.equal(displayName({ id: "llm1", type: "llm", config: { name: "x" } }), "llm1");
  assert.equal(nameWithKey({ id: "llm1", type: "llm", label: "Writer" }), "Writer (llm1)");
  assert.equal(nameWithKey({ id: "llm1", type: "llm" }), "llm1");
});

test("a rename is the old node and its edges out, the new ones in, changed configs updated", () => {
  const before = {
    nodes: [
      { id: "llm1", type: "llm", config: { prompt: "p" } },
      { id: "m", type: "merge", config: {} },
      { id: "t", type: "template", config: { template: "{{ v.llm1 }}" } },
      { id: "o", type: "output", config: { name: "o" } },
    ],
    edges: [
      { source: "llm1", target: "m", source_port: "text", target_port: "llm1" },
      { source: "m", target: "t", source_port: "value", target_port: "v" },
      { source: "t", target: "o", source_port: "text", target_port: "value", key: 0 },
    ],
  };
  const after = {
    nodes: [
      { id: "sum", type: "llm", config: { prompt: "p" } },
      { id: "m", type: "merge", config: {} },
      { id: "t", type: "template", config: { template: "{{ v.sum }}" } },
      { id: "o", type: "output", config: { name: "o" } },
    ],
    edges: [
      { source: "sum", target: "m", source_port: "text", target_port: "sum" },
      { source: "m", target: "t", source_port: "value", target_port: "v" },
      { source: "t", target: "o", source_port: "text", target_port: "value" },
    ],
  };
  const changes = documentChanges(before, after);
  assert.deepEqual(changes.removeNodes, ["llm1"]);
  assert.deepEqual(changes.addNodes.map((n) => n.id), ["sum"]);
  assert.deepEqual(changes.updateNodes.map((n) => n.id), ["t"]);
  assert.deepEqual(changes.removeEdges, [before.edges[0]]);
  assert.deepEqual(changes.addEdges, [after.edges[0]]);
});

test("parallel equal edges are counted, not merged", () => {
  const e = { source: "a", target: "b", source_port: "x", target_port: "y" };
  const changes = documentChanges({ nodes: [], edges: [e, e] }, { nodes: [], edges: [e] });
  assert.equal(changes.removeEdges.length, 1);
  assert.equal(changes.addEdges.length, 0);
});
