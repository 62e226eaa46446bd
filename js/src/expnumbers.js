// How the Experiments table writes a column's numbers: one format per column, so 350 AUCs read
// down a column ("0.90560" over "0.90346", not "0.9056" over "0.90346"), right-aligned in
// tabular figures (dag.css). A column's decimals are the most any of its values needs at
// SIGNIFICANT digits (what each cell showed alone before), more if two different values would
// still read alike; integers stay integers; NaN and inf are named; the cell's title holds the
// value in full (`fullText`).
import { num, spreadDecimals, text } from "./expdata.js";

const SIGNIFICANT = 5;
const MOST_DECIMALS = 12;

/** The decimals `value` needs at SIGNIFICANT digits, trailing zeros dropped (0.63: 2). */
function decimalsOf(value) {
  const shown = Number(value.toPrecision(SIGNIFICANT));
  for (let d = 0; d <= MOST_DECIMALS; d++) if (Number(shown.toFixed(d)) === shown) return d;
  return Infinity; // 1e-20: no fixed decimals show it
}

/** The format of a column holding `values` (raw, as logged): {decimals} for fixed decimals,
 * {integers: true}, or {exponent: true} when fixed decimals cannot show them (1e-20, 1e30). */
export function numberFormat(values, type) {
  const finite = [...new Set(values.map((v) => num(v, type)).filter((n) => n !== null && Number.isFinite(n)))];
  if (finite.every(Number.isInteger)) return { integers: true };
  if (finite.some((n) => Math.abs(n) >= 1e15)) return { exponent: true };
  let decimals = Math.max(...finite.filter((n) => n !== 0).map(decimalsOf));
  if (decimals > MOST_DECIMALS) return { exponent: true };
  // Two values that read alike at those decimals: more, up to MOST_DECIMALS (the title has the rest).
  const sorted = finite.sort((a, b) => a - b);
  const alike = (d) => sorted.some((n, i) => i > 0 && n.toFixed(d) === sorted[i - 1].toFixed(d));
  while (decimals < MOST_DECIMALS && alike(decimals)) decimals++;
  return { decimals };
}

/** The format of a measured column's groups (`stats`: each group's aggregate): the most
 * decimals any group's spread needs (one group's "0.0878 ± 0.0099" over another's "0.136 ±
 * 0.024" read unevenly), or, no group having a spread, the format of its `values`. */
export function groupsFormat(stats, values, type) {
  const decimals = stats.map(spreadDecimals).filter((d) => d !== null);
  return decimals.length ? { decimals: Math.max(...decimals) } : numberFormat(values, type);
}

/** `value` as its column's format writes it: text (a string, a bool, None) as `text` does. */
export function formatNumber(format, value, type) {
  const n = typeof value === "boolean" ? null : num(value, type);
  if (n === null || !Number.isFinite(n) || !format) return text(value, type);
  // A row paged in after the format was made (a big run's) that it does not fit: as it is.
  if (format.integers) return Number.isInteger(n) ? String(n) : text(value, type);
  if (format.exponent) return n.toExponential(SIGNIFICANT - 1);
  return n.toFixed(format.decimals);
}

/** A number in full, for a cell's title: every digit JavaScript keeps, NaN and inf named. */
export function fullText(value, type) {
  const n = typeof value === "boolean" ? null : num(value, type);
  return n === null || !Number.isFinite(n) ? text(value, type) : String(n);
}

/** Whether a column holds numbers: right-aligned, in tabular figures. */
export function numeric(column) {
  return column.type === "number";
}
