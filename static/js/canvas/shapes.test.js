import assert from "node:assert/strict";
import { test } from "node:test";

import {
  HEAD, PAD, ROW, STREAM_CHARS, STREAM_H, W, connectedPorts, edgeLabel, edgeLabels, nodeHeight, portItems,
  shortText, streamLines, tagAttrs, titleText, wrapLine,
} from "./shapes.js";

test("a node's ports are the server's, plus stale ones edges still use", () => {
  const server = { inputs: ["question"], outputs: ["text"] };
  const { items, rows } = portItems(server, { ins: ["question", "old"], outs: ["gone"] });
  assert.deepEqual(items.map((p) => p.id), ["in:question", "in:old", "out:text", "out:gone"]);
  assert.equal(rows, 2);
  assert.match(items[1].attrs.circle.class, /is-stale/);
  assert.doesNotMatch(items[0].attrs.circle.class, /is-stale/);
  assert.deepEqual(items[2].args, { x: W, y: HEAD + ROW / 2 + 2 });
});

test("a node that takes any input port shows its edges' ports and a '+ port'", () => {
  const { items } = portItems({ inputs: null, outputs: ["value"] }, { ins: ["a", "+"], outs: [] });
  assert.deepEqual(items.map((p) => p.id), ["in:a", "in:+", "out:value"]);
  assert.doesNotMatch(items[0].attrs.circle.class, /is-stale/);
  assert.equal(items[1].attrs.text.text, "+ port");
});

test("the ports a node's edges use are listed once each", () => {
  const edges = [
    { source: "a", target: "b", source_port: "text", target_port: "x" },
    { source: "a", target: "b", source_port: "text", target_port: "x" },
    { source: "b", target: "a", source_port: "out", target_port: "loop" },
  ];
  assert.deepEqual(connectedPorts("a", edges), { ins: ["loop"], outs: ["text"] });
});

test("streamed text shows its last five wrapped lines", () => {
  assert.equal(streamLines(""), " ");
  assert.equal(streamLines("a\n\n"), "a");
  const long = "x".repeat(50);
  assert.equal(streamLines(long), ["x".repeat(STREAM_CHARS), "x".repeat(STREAM_CHARS), "xxxx"].join("\n"));
  const many = Array.from({ length: 9 }, (_, i) => `line ${i}`).join("\n");
  assert.equal(streamLines(many).split("\n")[0], "line 4");
});

test("streamed text wraps between words, and inside a word only when it is longer than a line", () => {
  assert.deepEqual(wrapLine("the quick brown fox jumps over", 10), ["the quick ", "brown fox ", "jumps over"]);
  assert.deepEqual(wrapLine("a supercalifragilistic b", 10), ["a ", "supercalif", "ragilistic ", "b"]);
  const text = "Queues smooth bursts of work so that producers  never wait";
  const lines = wrapLine(text, STREAM_CHARS);
  assert.equal(lines.join(""), text);
  for (const line of lines) assert.ok(line.trimEnd().length <= STREAM_CHARS, line);
});

test("a title ends before its type tag: the longer the type, the shorter the title", () => {
  const label = "Summarise every incoming support ticket";
  assert.ok(titleText(label, "llm").endsWith("…"));
  assert.ok(titleText(label, "structured").length < titleText(label, "llm").length);
  assert.equal(titleText("Draft", "llm"), "Draft");
});

test("nodes that stream keep the stream's room from the start", () => {
  assert.equal(nodeHeight(1, false), HEAD + ROW + PAD);
  assert.equal(nodeHeight(1, true), HEAD + ROW + PAD + STREAM_H + 4);
});

test("long names are cut with an ellipsis", () => {
  assert.equal(shortText("abcdef", 4), "abc…");
  assert.equal(shortText("abc", 4), "abc");
});

test("badges fill the tag slots left to right; empty slots hide", () => {
  const attrs = tagAttrs([{ kind: "cost", text: "$0.5" }, { kind: "cached", text: "cached", title: "Cached" }]);
  assert.equal(attrs.tag0.class, "sy-tag sy-tag-cost");
  assert.equal(attrs.tag0.title, "$0.5");
  assert.equal(attrs.tag1.title, "Cached");
  assert.equal(attrs.tag1.transform, `translate(${attrs.tag0Bg.width + 4},-18)`);
  assert.equal(attrs.tag2.class, "sy-tag is-empty");
});

test("a loop-back edge is labelled by what it holds first or by += when it accumulates", () => {
  assert.equal(edgeLabel({}), "");
  assert.equal(edgeLabel(undefined), "");
  assert.equal(edgeLabel({ initial: "" }), 'initial: ""');
  assert.equal(edgeLabel({ initial: { verdict: "FAIL", feedback: "start over" } }), 'initial: {"verdict":"FAIL","feed…');
  assert.equal(edgeLabel({ append: true }), "+=");
  assert.equal(edgeLabel({ append: true, initial: [] }), "+=");
  assert.equal(edgeLabel({ append: true, initial: ["seed"] }), '+= (from ["seed"])');
  assert.equal(edgeLabel({ append: false, initial: 0 }), "initial: 0");
});

test("an edge without settings has no label; one with them has one, mid-way", () => {
  assert.deepEqual(edgeLabels({}), []);
  const [label] = edgeLabels({ append: true });
  assert.equal(label.position, 0.5);
  assert.equal(label.attrs.label.text, "+=");
  assert.equal(label.attrs.label.class, "sy-edge-label");
});
