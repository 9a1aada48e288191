/* format.js — numbers for people, written the way the server writes them.
   tests/fixtures/format.json pins these to the Python side (format.test.js here,
   tests/webapp/test_format_fixture.py there). No DOM: Node imports this file too. */

/** Seconds as the run page shows them: "4.2 s" under a minute (Django's floatformat:1),
    then "2 m 05 s". Empty for a missing or negative duration. */
export function formatSeconds(s) {
  if (s == null || !isFinite(s) || s < 0) return "";
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  const rest = Math.floor(s - m * 60);
  return m + " m " + String(rest).padStart(2, "0") + " s";
}

/** Dollars as webapp.runs.pricing.format_usd writes them: $0, <$0.0001, $0.0042, $12.50. */
export function formatUsd(amount) {
  if (amount == null || !isFinite(amount)) return "—";
  amount = Number(amount);
  if (amount === 0) return "$0";
  const size = Math.abs(amount);
  if (size >= 1) return "$" + amount.toFixed(2);
  if (size < 0.0001) return "<$0.0001";
  return "$" + String(Number(amount.toPrecision(4)));
}

/** A whole number with thousands separators: 10000 -> "10,000". */
export function formatCount(x) {
  // Not toLocaleString: its first call loads locale data, a long pause mid-frame.
  return String(Math.round(Number(x) || 0)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** A run's token usage: "5 in · 10,000 out tokens". */
export function formatUsage(usage) {
  return formatCount(usage.input_tokens) + " in · " + formatCount(usage.output_tokens) + " out tokens";
}
