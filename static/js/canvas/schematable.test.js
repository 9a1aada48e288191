import { test } from "node:test";
import assert from "node:assert/strict";

import { enumOptions, rowsFromSchema, schemaFromRows } from "./schematable.js";

const VERDICT = {
  type: "object",
  properties: {
    verdict: { enum: ["PASS", "FAIL"], description: "PASS when it is funny." },
    score: { type: "integer", minimum: 0, maximum: 10 },
  },
  required: ["verdict"],
};

test("each property is a row, with what the table does not show kept aside", () => {
  assert.deepEqual(rowsFromSchema(VERDICT), [
    { name: "verdict", type: "", description: "PASS when it is funny.", enum: "PASS, FAIL", required: true, rest: {} },
    { name: "score", type: "integer", description: "", enum: "", required: false, rest: { minimum: 0, maximum: 10 } },
  ]);
});

test("rows made back into a schema give the same schema", () => {
  assert.deepEqual(schemaFromRows(rowsFromSchema(VERDICT), VERDICT), VERDICT);
});

test("an edit changes only what it touches and keeps the schema's other keys", () => {
  const base = { ...VERDICT, description: "A verdict", additionalProperties: false };
  const rows = rowsFromSchema(base);
  rows[1].required = true;
  rows[1].description = "Out of ten";
  rows.push({ name: "tags", type: "array", description: "", enum: "", required: false, rest: {} });
  assert.deepEqual(schemaFromRows(rows, base), {
    ...base,
    properties: {
      verdict: VERDICT.properties.verdict,
      score: { type: "integer", minimum: 0, maximum: 10, description: "Out of ten" },
      tags: { type: "array" },
    },
    required: ["verdict", "score"],
  });
});

test("rows without a name are left out, and no rows is no schema", () => {
  assert.equal(schemaFromRows([{ name: " ", type: "string", description: "", enum: "", required: true }], null), null);
  assert.deepEqual(rowsFromSchema(null), []);
});

test("a schema the table cannot show is left to the raw view", () => {
  assert.equal(rowsFromSchema([1, 2]), null);
  assert.equal(rowsFromSchema({ type: "object", properties: [1] }), null);
  assert.equal(rowsFromSchema("text"), null);
});

test("enum options are split on commas, numbers for number fields", () => {
  assert.deepEqual(enumOptions("a, b ,, c", "string"), ["a", "b", "c"]);
  assert.deepEqual(enumOptions("1, 2.5, x", "number"), [1, 2.5, "x"]);
  assert.deepEqual(enumOptions("", ""), []);
});
