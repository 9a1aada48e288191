import assert from "node:assert/strict";
import { test } from "node:test";

import { accept, completionAt, filterOffers, namesFor } from "./complete.js";

test("completion opens after {{ and follows the name typed, not past a closed tag", () => {
  assert.deepEqual(completionAt("Answer {{", 9), { start: 9, query: "" });
  assert.deepEqual(completionAt("Answer {{ qu", 12), { start: 10, query: "qu" });
  assert.equal(completionAt("Answer {{ q }} and", 18), null);
  assert.equal(completionAt("no tag here", 5), null);
  assert.equal(completionAt("{{ value.score", 14), null); // a field of a value: not a name
  assert.deepEqual(completionAt("{{ a }} then {{ b", 17), { start: 16, query: "b" });
  assert.deepEqual(completionAt("{{ qu }}", 5), { start: 3, query: "qu" }); // caret inside
});

const doc = {
  nodes: [
    { id: "q", type: "input", config: { name: "question" } },
    { id: "ctx", type: "input", config: { name: "context" } },
    { id: "facts", type: "llm", label: "Find facts", config: { prompt: "{{ question }}" } },
    { id: "answer", type: "llm", label: "Answer", config: { prompt: "" } },
    { id: "later", type: "llm", config: { prompt: "{{ text }}" } },
    { id: "out", type: "output", config: { name: "reply" } },
  ],
  edges: [
    { source: "q", target: "facts", source_port: "value", target_port: "question" },
    { source: "q", target: "answer", source_port: "value", target_port: "question" },
    { source: "answer", target: "later", source_port: "text", target_port: "text" },
    { source: "later", target: "out", source_port: "text", target_port: "value" },
  ],
};

test("the node's own ports come first, then what could feed it, never what it feeds", () => {
  const offers = namesFor("answer", doc, ["question"]);
  assert.deepEqual(offers, [
    { name: "question", detail: "wired from question" },
    { name: "context", detail: "flow input" },
    { name: "facts", detail: "output of Find facts" },
  ]);
  assert.deepEqual(namesFor("answer", doc, ["notes"])[0], { name: "notes", detail: "input port, not wired yet" });
});

test("what was typed filters the offers: prefixes first, then any part, any case", () => {
  const offers = [{ name: "summary" }, { name: "question" }, { name: "Sub_q" }, { name: "value" }];
  assert.deepEqual(filterOffers(offers, "su").map((o) => o.name), ["summary", "Sub_q"]);
  assert.deepEqual(filterOffers(offers, "q").map((o) => o.name), ["question", "Sub_q"]);
  assert.deepEqual(filterOffers(offers, "").map((o) => o.name), ["summary", "question", "Sub_q", "value"]);
  assert.deepEqual(filterOffers(offers, "zz"), []);
});

test("accepting closes the tag, spaced, without doubling a closing already there", () => {
  assert.deepEqual(accept("Answer {{", 9, 9, "question"), { text: "Answer {{ question }}", caret: 21 });
  assert.deepEqual(accept("Answer {{ qu", 10, 12, "question"), { text: "Answer {{ question }}", caret: 21 });
  assert.deepEqual(accept("{{ qu }} rest", 3, 5, "question"), { text: "{{ question }} rest", caret: 14 });
  assert.deepEqual(accept("{{ q\nmore", 3, 4, "question").text, "{{ question }}\nmore");
});
