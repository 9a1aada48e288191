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
  const view = () => {
    const { sx, sy } = graph.scale();
    const { tx, ty } = graph.translate();
    return `${sx},${sy},${tx},${ty}`;
  };
  const sizeOf = () => `${container.clientWidth}x${container.clientHeight}`;
  const check = () => {
    const now = sizeOf();
    if (now === size) return;
    size = now;
    if (framed !== null && view() === framed && container.clientWidth && container.clientHeight) refit();
  };
  // The observer and requestAnimationFrame are both served by frame production, which a
  // busy headless Chromium was seen to hold back for seconds, leaving the flow framed for
  // the old size. So the events that change the area's size also check it, as tasks: a
  // window resize, a <details> opened or closed (toggle does not bubble: captured), an
  // htmx swap settled. Reading the size lays the page out first; framing moves the view,
  // not the container, so it cannot loop the observer.
  if (typeof ResizeObserver === "function") new ResizeObserver(check).observe(container);
  window.addEventListener("resize", check);
  document.addEventListener("toggle", check, true);
  document.addEventListener("htmx:afterSettle", check);
  // Until the canvas is first pressed, scrolled or typed into, a node grown by a run's
  // state (its output text, painted after the first framing) frames the flow again too.
  let touched = false;
  for (const type of ["pointerdown", "wheel", "keydown"]) {
    container.addEventListener(type, () => (touched = true), { capture: true, passive: true });
  }
  let pending = 0;
  return {
    /** The view was just framed: keep it framed while it is left as it is. */
    framed() {
      framed = view();
      size = sizeOf();
    },
    /** A node changed size: framed again (once for a burst of them) if still untouched. */
    contentChanged() {
      if (touched || pending || framed === null) return;
      pending = setTimeout(() => {
        pending = 0;
        if (!touched && view() === framed && container.clientWidth && container.clientHeight) refit();
      }, 0);
    },
  };
}
