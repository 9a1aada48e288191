import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { formatCount, formatSeconds, formatUsage, formatUsd } from "./format.js";

const fixture = JSON.parse(readFileSync(new URL("../../../tests/fixtures/format.json", import.meta.url), "utf8"));

test("dollars are written as the server's format_usd writes them", () => {
  for (const [amount, text] of fixture.usd) assert.equal(formatUsd(amount), text, `formatUsd(${amount})`);
});

test("durations under a minute are written as the server's floatformat:1 writes them", () => {
  for (const [seconds, text] of fixture.seconds) assert.equal(formatSeconds(seconds), text, `formatSeconds(${seconds})`);
});

test("a duration of a minute or more is minutes and padded seconds", () => {
  assert.equal(formatSeconds(60), "1 m 00 s");
  assert.equal(formatSeconds(125.9), "2 m 05 s");
});

test("a missing or negative duration is written as nothing", () => {
  for (const value of [null, undefined, -1, NaN, Infinity]) assert.equal(formatSeconds(value), "");
});

test("a missing amount is a dash", () => {
  assert.equal(formatUsd(null), "—");
  assert.equal(formatUsd(undefined), "—");
});

test("token counts get thousands separators", () => {
  assert.equal(formatCount(0), "0");
  assert.equal(formatCount(999), "999");
  assert.equal(formatCount(1234567), "1,234,567");
  assert.equal(formatUsage({ input_tokens: 5, output_tokens: 10000 }), "5 in · 10,000 out tokens");
});
