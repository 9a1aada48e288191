import assert from "node:assert/strict";
import { test } from "node:test";

import { BadValue, collectFiles, collectInputs, parseValue, uploadBody } from "./inputs.js";

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

test("files chosen go as parts named by their input, the JSON as the field body, no base64", async () => {
  const png = new File([new Uint8Array([0x89, 0x50, 0x4e, 0x47])], "cat.png", { type: "image/png" });
  const field = (name, files) => ({ files, dataset: { fileInput: name } });
  const form = { querySelectorAll: () => [field("pic", [png]), field("doc", [])] };
  const files = collectFiles(form);
  assert.deepEqual(Object.keys(files), ["pic"]);
  const body = uploadBody({ inputs: { q: "why" }, version: "current" }, files);
  assert.deepEqual([...body.keys()], ["body", "pic"]);
  assert.deepEqual(JSON.parse(body.get("body")), { inputs: { q: "why" }, version: "current" });
  const part = body.get("pic");
  assert.equal(part.name, "cat.png");
  assert.deepEqual([...new Uint8Array(await part.arrayBuffer())], [0x89, 0x50, 0x4e, 0x47]);
});
