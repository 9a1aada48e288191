/* autofit.js — the flow stays framed while its area changes size, until the view is
   moved by hand.

   A page frames the flow when it is drawn, but the canvas's area is often not final
   then: on the run page the timeline under the canvas loads afterwards and takes its
   height (nodes ended up cut off under it until Fit was pressed); a window resize does
   the same. So each framing is remembered (the zoom and pan it set), and when the
   container's size changes while the view is still exactly that, the flow is framed
   again for the new size. A zoom or pan by the user leaves the view as they made it. */

/** graph: the X6 graph; container: its element; refit(): frame the flow again. */
export function keepFramed(graph, container, refit) {
  let framed = null; // the view as the last framing left it
  let size = "";
  let frame = 0;
  const view = () => {
    const { sx, sy } = graph.scale();
    const { tx, ty } = graph.translate();
    return `${sx},${sy},${tx},${ty}`;
  };
  const sizeOf = () => `${container.clientWidth}x${container.clientHeight}`;
  const check = () => {
    frame = 0;
    const now = sizeOf();
    if (now === size) return;
    size = now;
    if (framed !== null && view() === framed && container.clientWidth && container.clientHeight) refit();
  };
  if (typeof ResizeObserver === "function") {
    new ResizeObserver(() => {
      if (!frame) frame = requestAnimationFrame(check);
    }).observe(container);
  }
  return {
    /** The view was just framed: keep it framed while it is left as it is. */
    framed() {
      framed = view();
      size = sizeOf();
    },
  };
}
