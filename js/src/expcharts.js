// The Experiments view's charts, drawn with Observable Plot (the project's charting library;
// timeline.js says why): a metric against a param coloured by another, parallel coordinates
// over the columns shown, and step curves of a metric logged with `step`. Each takes the rows
// the table shows (filtered) and names the best row with a ring; text in the chart (titles,
// labels) is set by Plot as SVG text, never as HTML.
import * as Plot from "@observablehq/plot";

import { escapeBidi } from "./bidi.js";
import { num, raw, shownValue, text } from "./expdata.js";

const HEIGHT = 300;
const MAX_COLOURS = 10; // more distinct values than this: a colour ramp, not a legend of names

function size(box) {
  return { width: Math.max(360, box.clientWidth || 640), height: HEIGHT };
}

// Names and text values with their bidirectional controls written out (bidi.js), as the
// table's headers and cells show them: an override in a param's name turned an axis label round.
const named = (column) => escapeBidi(column.label);

function value(row, column) {
  const v = raw(row, column.id);
  return column.type === "number" || column.type === "bool" ? num(v, column.type) : escapeBidi(shownValue(v, column));
}

function colour(rows, column) {
  if (!column) return { fill: undefined, options: {} };
  const numeric = column.type === "number";
  const distinct = new Set(rows.map((r) => escapeBidi(shownValue(raw(r, column.id), column))));
  const ordinal = !numeric || distinct.size <= MAX_COLOURS;
  // A few numbers (n_estimators 50, 100, 200) are colours by their text, in the legend in
  // their order as numbers: Plot's own order of texts put 100 and 200 before 50.
  const domain = numeric && ordinal
    ? { domain: [...distinct].sort((a, b) => (Number(a) - Number(b)) || (a < b ? -1 : a > b ? 1 : 0)) }
    : {};
  return {
    fill: (r) => (ordinal ? escapeBidi(shownValue(raw(r, column.id), column)) : num(raw(r, column.id), column.type)),
    options: { legend: true, label: named(column), type: ordinal ? "ordinal" : "linear",
      ...(ordinal ? { scheme: "tableau10" } : {}), ...domain },
  };
}

function titleOf(row, columns) {
  const index = row.map_index == null ? "" : `[${row.map_index}] `;
  return escapeBidi(index + columns.map((c) => `${c.label}=${shownValue(raw(row, c.id), c)}`).join(", "));
}

/** Why rows with a value have no dot: "2 rows not drawn: auc is NaN (1), inf (1)", or
 * undefined (NaN and inf have no place on an axis: said, as the table shows them; so has a
 * param logged as None on a number axis, max_depth=None: those rows, often the best, went
 * missing from a chart of auc against max_depth without a word). */
function notDrawn(rows, axes) {
  const byAxis = new Map(); // axis label -> the values not drawn
  let out = 0;
  const none = (r, c) => c.kind === "param" && raw(r, c.id) === null;
  for (const r of rows) {
    const axis = axes.find((c) => { const v = value(r, c); return none(r, c) || (v !== null && !Number.isFinite(v)); });
    if (!axis) continue;
    out++;
    byAxis.set(axis.label, (byAxis.get(axis.label) || []).concat(none(r, axis) ? "None" : value(r, axis)));
  }
  if (!out) return undefined;
  const why = [...byAxis].map(([label, values]) => `${label} is ${tally(values)}`);
  return escapeBidi(`${out} row${out === 1 ? "" : "s"} not drawn: ${why.join("; ")}`);
}

function rowsOf(points) {
  const n = new Set(points.map((p) => p.task_run_id)).size;
  return `${n} row${n === 1 ? "" : "s"}`;
}

/** Non-finite numbers counted as shown: "NaN (2), inf (1)". */
function tally(values) {
  const counts = new Map();
  for (const v of values) counts.set(text(v, "number"), (counts.get(text(v, "number")) || 0) + 1);
  return [...counts].map(([shown, n]) => `${shown} (${n})`).join(", ");
}

const FEW = 12; // this many distinct values or fewer: one place each, evenly spaced (parallel: labelled)

/** An axis for numbers that are all integers (max_depth 1, 2, 4, 8), ticked at 1.5 and 2.5 by
 * Plot's linear scale: a few are points in their order (a sweep's doubling values evenly
 * spaced), more are ticked at integers only. {} for other numbers. Every row's value has a
 * place, drawn or not: depth 8 with no dot says each of its runs failed. */
export function integerAxis(values) {
  const xs = values.filter((v) => v !== null && Number.isFinite(v));
  if (!xs.length || !xs.every(Number.isInteger)) return {};
  const distinct = [...new Set(xs)].sort((a, b) => a - b);
  if (distinct.length <= FEW) return { type: "point", domain: distinct };
  return integerTicks(distinct[0], distinct[distinct.length - 1]);
}

/** About eight ticks from `lo` to `hi`, at integers only (1, 2 or 5 times a power of ten),
 * written as integers (Plot wrote the ticks of 0 to 3 as "0.0" to "3.0"). */
function integerTicks(lo, hi) {
  const rough = (hi - lo) / 8;
  const power = rough > 0 ? 10 ** Math.floor(Math.log10(rough)) : 1;
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough));
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) ticks.push(t);
  return { ticks, tickFormat: "d" };
}

/** y against x, one dot per row, coloured by `by`; the `best` rows ringed (the best row; grouped,
 * the best group's rows). */
export function scatter(box, rows, { x, y, by, best = [], columns }) {
  const finite = (v) => v !== null && Number.isFinite(v);
  const shown = rows.filter((r) => finite(value(r, y)) && (x.type !== "number" || finite(value(r, x))));
  const caption = notDrawn(rows, x.type === "number" ? [y, x] : [y]);
  const c = colour(shown, by);
  const marks = [
    Plot.dot(shown, { x: (r) => value(r, x), y: (r) => value(r, y), stroke: c.fill, fill: c.fill,
      fillOpacity: 0.35, r: 4, title: (r) => titleOf(r, columns), tip: false }),
  ];
  const marked = new Set(best);
  const ringed = shown.filter((r) => marked.has(r));
  if (ringed.length) {
    marks.push(Plot.dot(ringed, { x: (r) => value(r, x), y: (r) => value(r, y), r: 9,
      stroke: "currentColor", strokeWidth: 2, className: "labloom-exp-best-mark" }));
  }
  return Plot.plot({
    ...size(box), marginLeft: 56, grid: true, ...(caption ? { caption } : {}),
    x: { label: named(x), ...(x.type === "number" ? integerAxis(rows.map((r) => value(r, x))) : { type: "point" }) },
    y: { label: named(y) },
    color: c.options,
    marks,
  });
}

const AXIS_FONT = 10; // px: the end labels' size, and Plot's axis titles'
const AXIS_GAP = 8; // px kept free between a label and the next axis
const PADDING = 0.5; // Plot's point scale: half a step beside the first and the last axis

/** Where each row's value sits on column `d`'s axis (0 to 1, null: no place) and its labels.
 * A few values (FEW or fewer: a sweep's grid, 0.01 0.03 0.05 0.1) are evenly spaced in their
 * order, each labelled: scaled to their range, only the ends were labelled and 0.03 and 0.05
 * sat 10 px apart, which value a line met could not be told. More are scaled to their range
 * (text: in their order), labelled at the ends. A column holding one value has one label, in
 * the middle where its lines meet: the same value at both ends read as a range. */
function axisOf(rows, d) {
  const numeric = d.type === "number" || d.type === "bool";
  const vs = rows.map((r) => value(r, d)).filter((v) => !numeric || (v !== null && Number.isFinite(v)));
  if (!vs.length) return { at: () => null, labels: [] };
  const distinct = numeric ? [...new Set(vs)].sort((a, b) => a - b) : [...new Set(vs)].sort();
  const shown = (v) => (numeric ? text(v, "number") : v);
  const placed = (v) => (numeric && (v === null || !Number.isFinite(v)) ? null : v);
  if (distinct.length === 1) return { at: (v) => (placed(v) === null ? null : 0.5), labels: [{ at: 0.5, text: shown(distinct[0]) }] };
  const n = distinct.length - 1;
  if (distinct.length <= FEW || !numeric) {
    const label = (v, i) => ({ at: i / n, text: shown(v) });
    return { at: (v) => (placed(v) === null ? null : distinct.indexOf(v) / n),
      labels: distinct.length <= FEW ? distinct.map(label) : [label(distinct[0], 0), label(distinct[n], n)] };
  }
  const lo = distinct[0], hi = distinct[n];
  return { at: (v) => (placed(v) === null ? null : (v - lo) / (hi - lo)),
    labels: [{ at: 0, text: shown(lo) }, { at: 1, text: shown(hi) }] };
}

/** One line per row across the columns, each scaled to its own range (strings: their values
 * in order), coloured by the metric `y`. The ends' labels sit inside the axis (the lowest
 * above its foot, the highest under its head, clear of the title above it) on a halo that
 * the lines pass under, and both they and the titles are cut with "…" to the room beside
 * their axis: a title touched the highest value under it, lines crossed the values, and a
 * long value ran into the next axis. */
export function parallel(box, rows, { dims, y, best = [] }) {
  const axes = dims.map((d) => axisOf(rows, d));
  const marked = new Set(best);
  const points = [];
  rows.forEach((r, i) => {
    const tint = num(raw(r, y.id), y.type);
    dims.forEach((d, j) => {
      // No place on this axis (NaN, inf, missing): NaN, which breaks the row's line there; left
      // out, the line went straight across the axis, through a value the row never had.
      const at = axes[j].at(value(r, d));
      points.push({ row: i, dim: named(d), at: at === null ? NaN : at, tint, best: marked.has(r) });
    });
  });
  const labels = dims.map(named);
  const ends = dims.flatMap((d, j) => axes[j].labels.map((e) => ({ ...e, dim: named(d) })));
  const margin = { marginTop: 24, marginBottom: 12, marginLeft: 40, marginRight: 40 };
  const { width } = size(box);
  const step = (width - margin.marginLeft - margin.marginRight) / Math.max(1, labels.length - 1 + 2 * PADDING);
  const room = (px) => Math.max(1, (px - AXIS_GAP) / AXIS_FONT); // in ems, as Plot's lineWidth
  // The last axis has half a step and the right margin beside it, the others a whole step.
  const last = labels[labels.length - 1];
  const where = { bottom: (at) => at === 0, middle: (at) => at > 0 && at < 1, top: (at) => at === 1 };
  const endText = (lineAnchor, isLast) => Plot.text(ends.filter((e) => where[lineAnchor](e.at) && (e.dim === last) === isLast), {
    x: "dim", y: "at", text: "text", dx: 4, textAnchor: "start", lineAnchor, fill: "currentColor",
    fontSize: AXIS_FONT, lineWidth: room((isLast ? PADDING * step + margin.marginRight : step) - 4),
    textOverflow: "ellipsis-middle", className: "labloom-exp-axis-end" });
  return Plot.plot({
    ...size(box), ...margin,
    x: { type: "point", domain: labels, padding: PADDING, label: null, axis: null },
    y: { domain: [0, 1], axis: null },
    color: { type: "linear", scheme: "viridis", legend: true, label: named(y) },
    marks: [
      Plot.axisX({ anchor: "top", tickSize: 0, tickPadding: 8, label: null, fontSize: AXIS_FONT,
        lineWidth: room(step), textOverflow: "ellipsis-middle" }),
      Plot.ruleX(labels, { stroke: "#a1a1aa" }),
      Plot.line(points, { x: "dim", y: "at", z: "row", stroke: "tint", strokeOpacity: 0.45 }),
      Plot.line(points.filter((p) => p.best), { x: "dim", y: "at", z: "row", stroke: "currentColor",
        strokeWidth: 2.5, className: "labloom-exp-best-mark" }),
      ...[false, true].flatMap((isLast) => ["bottom", "middle", "top"].map((anchor) => endText(anchor, isLast))),
    ],
  });
}

/** Steps (epochs: integers) ticked at integers: Plot's linear scale ticked 4 epochs at 0.2,
 * 0.4, ... 2.8, steps no run logged. A step's place stays linear (10, 100, 1000 as far apart
 * as they are). {} when some step is not an integer. */
function stepTicks(points) {
  if (!points.length || !points.every((p) => Number.isInteger(p.step))) return {};
  const steps = points.map((p) => p.step);
  return integerTicks(Math.min(...steps), Math.max(...steps));
}

/** A metric's points by step, one line per task run, coloured by `by` of its row. */
export function curves(box, answer, rows, { by, best = [], label }) {
  const byId = new Map(rows.map((r) => [r.task_run_id, r]));
  const logged = answer.points
    .filter((p) => p.step !== null && byId.has(p.task_run_id))
    .map((p) => ({ ...p, value: num(p.value, "number"), row: byId.get(p.task_run_id) }))
    .filter((p) => p.value !== null);
  // A NaN or inf point (a diverged loss) is a gap in its line, said under the chart: left
  // out, the line went on across it, or just ended, as if the run had stopped there.
  const undrawn = logged.filter((p) => !Number.isFinite(p.value));
  const points = logged.map((p) => (Number.isFinite(p.value) ? p : { ...p, value: NaN }))
    .sort((a, b) => (a.task_run_id < b.task_run_id ? -1 : a.task_run_id > b.task_run_id ? 1 : a.step - b.step));
  const caption = undrawn.length ? `${undrawn.length} point${undrawn.length === 1 ? "" : "s"} not drawn: ` +
    `${label} is ${tally(undrawn.map((p) => p.value))}, in ${rowsOf(undrawn)}` : undefined;
  const c = colour(rows, by);
  const marks = [
    Plot.line(points, { x: "step", y: "value", z: "task_run_id", stroke: c.fill ? (p) => c.fill(p.row) : undefined,
      // One title per line: a title varying along it would cut the line into segments.
      strokeOpacity: 0.6, title: (p) => titleOf(p.row, []) + escapeBidi(p.task) }),
  ];
  if (best.length) {
    const marked = new Set(best);
    marks.push(Plot.line(points.filter((p) => marked.has(p.row)), { x: "step", y: "value", z: "task_run_id",
      stroke: "currentColor", strokeWidth: 2.5, className: "labloom-exp-best-mark" }));
  }
  const chart = Plot.plot({ ...size(box), marginLeft: 56, grid: true, ...(caption ? { caption: escapeBidi(caption) } : {}),
    x: { label: "step", ...stepTicks(points) }, y: { label: escapeBidi(label) }, color: c.options, marks });
  // Points NaN only still draw the chart, its caption saying so (not "no step points").
  return { chart, drawn: points.length };
}
