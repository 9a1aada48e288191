import assert from "node:assert/strict";
import { test } from "node:test";

import { fastViewOptions } from "./x6views.js";

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
