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

/* Where an edge ends. X6 asks each edge's bounding box whether it is in view (virtual
   rendering), on load and again whenever a node changes; each end is found by laying out
   every port of the node's group afresh (lodash copies of each port): for a 200-node run
   page that was a quarter of opening it. The layout only changes with the node's size or
   its ports, and X6 makes a new parsed-ports object (`node.port`) on every change of the
   ports: the layout is kept per node for that object, width, height and group, and each
   caller gets its own copy of it. */

/** Patch X6.Node's getPortsPosition once; returns whether it is patched. */
export function cachedPortPositions(X6) {
  const proto = X6 && X6.Node && X6.Node.prototype;
  if (!proto || typeof proto.getPortsPosition !== "function") return false;
  if (proto.getPortsPosition.switchyardCached) return true;
  const layout = proto.getPortsPosition;
  const cache = new WeakMap(); // node -> {port, width, height, groups: Map(group -> positions)}
  const cached = function getPortsPosition(group) {
    const size = this.getSize();
    let entry = cache.get(this);
    if (!entry || entry.port !== this.port || entry.width !== size.width || entry.height !== size.height) {
      entry = { port: this.port, width: size.width, height: size.height, groups: new Map() };
      cache.set(this, entry);
    }
    let positions = entry.groups.get(group);
    if (!positions) {
      positions = layout.call(this, group);
      entry.groups.set(group, positions);
    }
    const copy = {};
    for (const [id, at] of Object.entries(positions)) copy[id] = { position: { ...at.position }, angle: at.angle };
    return copy;
  };
  cached.switchyardCached = true;
  proto.getPortsPosition = cached;
  return true;
}
