import assert from "node:assert/strict";
import { test } from "node:test";

import { variableName, withVariable } from "./wiring.js";

test("a dropped wire's variable is named after its port, free among the node's ports", () => {
  assert.equal(variableName("text", new Set()), "text");
  assert.equal(variableName("text", new Set(["text", "text_2"])), "text_3");
  assert.equal(variableName("my-port", new Set()), "my_port");
  assert.equal(variableName("", new Set()), "value");
});

test("the variable is added to the template without touching what is written", () => {
  assert.equal(withVariable("", "text"), "{{ text }}");
  assert.equal(withVariable(undefined, "text"), "{{ text }}");
  assert.equal(withVariable("Summarise:", "text"), "Summarise:\n{{ text }}");
  assert.equal(withVariable("Summarise ", "text"), "Summarise {{ text }}");
});
