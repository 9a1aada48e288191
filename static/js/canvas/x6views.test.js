import assert from "node:assert/strict";
import { test } from "node:test";

import { cachedPortPositions, fastViewOptions } from "./x6views.js";

// X6's shape: CellView.prototype.ensureOptions -> a deep merge of {graph, ...} into a copy of
// the defaults; NodeView extends CellView. The fake merge copies what it is given, the way
// lodash's merge copies plain objects (and would go through the graph's type checks).
function fakeX6() {
  const seen = [];
  class CellView {
    ensureOptions(options) {
      seen.push(Object.keys(options));
      return { actions: { attrs: ["render"] }, ...structuredClone(options) };
    }
  }
  class NodeView extends CellView {}
  return { X6: { NodeView }, CellView, seen };
}

test("the graph skips the merge and is the same object in the options", () => {
  const { X6, CellView, seen } = fakeX6();
  assert.equal(fastViewOptions(X6), true);
  const graph = { big: true };
  const options = new X6.NodeView().ensureOptions({ graph, priority: 2 });
  assert.equal(options.graph, graph);
  assert.equal(options.priority, 2);
  assert.deepEqual(options.actions, { attrs: ["render"] });
  assert.deepEqual(seen, [["priority"]]);
  assert.ok(Object.prototype.hasOwnProperty.call(CellView.prototype, "ensureOptions"));
});

test("options without a graph go through X6 unchanged, and patching twice wraps once", () => {
  const { X6, CellView, seen } = fakeX6();
  fastViewOptions(X6);
  const once = CellView.prototype.ensureOptions;
  fastViewOptions(X6);
  assert.equal(CellView.prototype.ensureOptions, once);
  assert.deepEqual(new X6.NodeView().ensureOptions({ priority: 1 }).priority, 1);
  assert.deepEqual(seen, [["priority"]]);
});

test("nothing to patch: no NodeView, or no ensureOptions above it", () => {
  assert.equal(fastViewOptions({}), false);
  assert.equal(fastViewOptions({ NodeView: class {} }), false);
});

// X6's shape: Node.prototype.getPortsPosition(group) lays the group's ports out for the
// node's size; `port` is the parsed ports, a new object on every change of the ports.
function fakeNodes() {
  let layouts = 0;
  class Node {
    constructor() {
      this.size = { width: 100, height: 50 };
      this.port = { items: ["a"] };
    }
    getSize() {
      return { ...this.size };
    }
    getPortsPosition(group) {
      layouts += 1;
      const out = {};
      this.port.items.forEach((id, i) => {
        out[id] = { position: { x: group === "in" ? 0 : this.size.width, y: 10 * (i + 1) }, angle: 0 };
      });
      return out;
    }
  }
  return { X6: { Node }, layouts: () => layouts };
}

test("port positions are laid out once per size and ports, each caller gets a copy", () => {
  const { X6, layouts } = fakeNodes();
  assert.equal(cachedPortPositions(X6), true);
  assert.equal(cachedPortPositions(X6), true);
  const node = new X6.Node();
  const first = node.getPortsPosition("out");
  first.a.position.x = -1;
  assert.deepEqual(node.getPortsPosition("out"), { a: { position: { x: 100, y: 10 }, angle: 0 } });
  assert.equal(layouts(), 1);
  node.getPortsPosition("in");
  assert.equal(layouts(), 2);
  node.size = { width: 200, height: 50 };
  assert.equal(node.getPortsPosition("out").a.position.x, 200);
  node.port = { items: ["a", "b"] };
  assert.deepEqual(Object.keys(node.getPortsPosition("out")), ["a", "b"]);
  assert.equal(layouts(), 4);
});
