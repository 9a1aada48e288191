/* x6views.js — one cost of X6 3.1.8 (static/vendor/x6.min.js) taken off opening a big flow.

   X6 makes a view for every cell when a flow is loaded (virtual rendering draws only the
   visible ones, but the views are all made). Each view's constructor deep-merges its options,
   {graph}, into a deep copy of its class's defaults with lodash's merge. For the graph, which
   is not a plain object, merge ends up assigning it as it is, but only after lodash's type
   checks on it: the Graph defines Symbol.toStringTag with a getter, and lodash's getRawTag
   tries to assign that property, which throws in the bundle's strict code. Two exceptions per
   view, each capturing a stack trace: over a third of the time to open a 302-node flow (900
   views) went there. Here the graph is left out of the merge and assigned afterwards: the
   same options object, without the exceptions. */

/** Patch X6's CellView (found above X6.NodeView) once; returns whether it is patched. */
export function fastViewOptions(X6) {
  let proto = X6 && X6.NodeView && X6.NodeView.prototype;
  while (proto && !Object.prototype.hasOwnProperty.call(proto, "ensureOptions")) proto = Object.getPrototypeOf(proto);
  if (!proto) return false;
  if (proto.ensureOptions.switchyardFast) return true;
  const ensure = proto.ensureOptions;
  const fast = function ensureOptions(options) {
    if (!options || !Object.prototype.hasOwnProperty.call(options, "graph")) return ensure.call(this, options);
    const { graph, ...rest } = options;
    const result = ensure.call(this, rest);
    result.graph = graph;
    return result;
  };
  fast.switchyardFast = true;
  proto.ensureOptions = fast;
  return true;
}
