import assert from "node:assert/strict";
import { test } from "node:test";

import { BadValue, collectInputs, parseValue } from "./inputs.js";

test("form values are JSON when they parse, else text, and blank ones are left out", () => {
  const values = ["42", "hello", "", "  ", '"42"', '{"a": [1]}', "null", '"[1,"'].map(parseValue);
  assert.deepEqual(values, [42, "hello", undefined, undefined, "42", { a: [1] }, null, "[1,"]);
});

test("a value that starts like a JSON object or list but does not parse is refused", () => {
  for (const text of ["[1,", '{"a": 1', " {a: 1}"]) assert.throws(() => parseValue(text), BadValue);
  const field = (name, value) => ({ value, dataset: { inputName: name } });
  const form = { querySelectorAll: () => [field("topic", "queues"), field("config", '{"depth": 2')] };
  assert.throws(() => collectInputs(form), (error) => error instanceof BadValue && error.inputName === "config" && error.field.value === '{"depth": 2' && /not valid JSON/.test(error.message));
});

test("a form's inputs are collected by name, blank ones left to their defaults", () => {
  const field = (name, value) => ({ value, dataset: { inputName: name } });
  const form = { querySelectorAll: () => [field("topic", "queues"), field("n", "3"), field("skip", "")] };
  assert.deepEqual(collectInputs(form), { topic: "queues", n: 3 });
});
