/* keys.js — keyboard helpers shared by the canvas and the replay bar. */

/**
 * Whether a key pressed in `target` belongs to what is being typed there (a field, a
 * select, an editable element), so a page shortcut must leave it alone. With
 * {range: false} a range input does not count: the replay's scrubber lets Space through.
 */
export function isTyping(target, options) {
  if (!target || target === document.body) return false;
  const tag = target.tagName;
  if (tag === "INPUT" && target.type === "range" && options && options.range === false) return false;
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || Boolean(target.isContentEditable);
}
