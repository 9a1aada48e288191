import assert from "node:assert/strict";
import { test } from "node:test";

import { Breakpoints, MAX_BREAKPOINTS, parseStored } from "./breakpoints.js";

class Memory {
  constructor() {
    this.items = new Map();
  }
  getItem(key) {
    return this.items.has(key) ? this.items.get(key) : null;
  }
  setItem(key, value) {
    this.items.set(key, String(value));
  }
  removeItem(key) {
    this.items.delete(key);
  }
}

test("a toggled mark is kept per flow and read back by the next page", () => {
  const storage = new Memory();
  const marks = new Breakpoints(7, storage);
  assert.equal(marks.toggle("b"), true);
  assert.equal(marks.toggle("a"), true);
  assert.deepEqual(marks.list(), ["a", "b"]);
  assert.equal(storage.getItem("switchyard:breakpoints:7"), '["a","b"]');
  assert.deepEqual(new Breakpoints(7, storage).list(), ["a", "b"]);
  assert.deepEqual(new Breakpoints(8, storage).list(), [], "another flow has its own");
  assert.equal(marks.toggle("a"), false);
  assert.equal(marks.toggle("b"), false);
  assert.equal(storage.getItem("switchyard:breakpoints:7"), null, "none left: nothing stored");
});

test("only node ids are marked or read back", () => {
  const marks = new Breakpoints(1, new Memory());
  assert.equal(marks.toggle("../x"), false);
  assert.deepEqual(marks.list(), []);
  assert.deepEqual(parseStored('["a", "a", 3, "no way", "b"]'), ["a", "b"]);
  assert.deepEqual(parseStored("{not json"), []);
  assert.deepEqual(parseStored('{"a": 1}'), []);
  const many = JSON.stringify(Array.from({ length: MAX_BREAKPOINTS + 5 }, (_, i) => "n" + i));
  assert.equal(parseStored(many).length, MAX_BREAKPOINTS);
});

test("marks on deleted nodes are forgotten", () => {
  const storage = new Memory();
  const marks = new Breakpoints(1, storage);
  marks.toggle("a");
  marks.toggle("gone");
  assert.deepEqual(marks.keepOnly(["a", "b"]), ["gone"]);
  assert.deepEqual(new Breakpoints(1, storage).list(), ["a"]);
});

test("storage that refuses to work loses nothing on the page", () => {
  const broken = {
    getItem() {
      throw new Error("disabled");
    },
    setItem() {
      throw new Error("full");
    },
    removeItem() {
      throw new Error("disabled");
    },
  };
  const marks = new Breakpoints(1, broken);
  assert.equal(marks.toggle("a"), true);
  assert.deepEqual(marks.list(), ["a"]);
});
