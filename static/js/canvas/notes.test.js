import assert from "node:assert/strict";
import { test } from "node:test";

import { annotationCells, annotationsOf, groupMeta, isAnnotation, noteMeta } from "./notes.js";

// Just enough of an X6 node for annotationsOf: what a cell drawn from `meta` answers.
const cell = (meta) => ({
  id: meta.id,
  getData: () => meta.data,
  getPosition: () => ({ x: meta.x, y: meta.y }),
  getSize: () => ({ width: meta.width, height: meta.height }),
});

test("notes and groups go onto the canvas and back into the document unchanged", () => {
  const doc = {
    notes: [{ id: "why", text: "<b>not html</b>", color: "green", position: { x: 1, y: 2 }, size: { width: 200, height: 90 } }],
    groups: [
      { id: "g", title: "Drafting", color: "pink", position: { x: 0, y: 0 }, size: { width: 500, height: 300 }, collapsed: true, nodes: ["a", "b"] },
    ],
  };
  const cells = annotationCells(doc);
  assert.deepEqual(cells.map((c) => c.shape), ["sy-group", "sy-note"]);
  const back = annotationsOf(cells.map(cell));
  assert.deepEqual(back.notes, doc.notes);
  assert.deepEqual(back.groups, doc.groups);
});

test("an unknown colour is drawn and saved as the first one, never put in a class as is", () => {
  const meta = noteMeta({ id: "n", text: "x", color: 'yellow" onload="x' });
  assert.equal(meta.data.color, "yellow");
  assert.equal(meta.attrs.body.class, "sy-note-body c-yellow");
  assert.equal(groupMeta({ id: "g", color: "red" }).data.color, "yellow");
});

test("only notes and groups are annotations", () => {
  assert.equal(isAnnotation(cell(noteMeta({ id: "n" }))), true);
  assert.equal(isAnnotation(cell(groupMeta({ id: "g" }))), true);
  assert.equal(isAnnotation({ getData: () => ({ type: "llm" }) }), false);
  assert.deepEqual(annotationsOf([{ getData: () => ({ type: "llm" }), getPosition: () => ({}), getSize: () => ({}) }]), { notes: [], groups: [] });
});
