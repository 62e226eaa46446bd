// The Experiments view's data, without drawing: columns, values as numbers and as text, the
// filter, sorting (as the server sorts, core/experiments.page), "only columns that vary", the
// best row, and group-by with the other columns aggregated (mean, std, min, max, n).
//
// A row is the shape the REST routes and the kernel answer: {run_id, task_run_id, task,
// map_index, state, duration, params: {}, metrics: {}}; NaN and inf arrive as the strings
// "NaN", "Infinity", "-Infinity" (JSON has no such numbers) and are read back here.

const NONFINITE = { NaN: NaN, Infinity: Infinity, "-Infinity": -Infinity };

/** The view's columns: fixed ones, then each param and metric ({id, label, kind, type}). */
export function columnsOf(answer, extra = []) {
  const fixed = [
    ...extra,
    { id: "map_index", label: "index", kind: "fixed", type: "number" },
    { id: "state", label: "state", kind: "fixed", type: "string" },
    { id: "duration", label: "duration", kind: "fixed", type: "number" },
    { id: "task", label: "task", kind: "fixed", type: "string" },
  ];
  const named = (answer.columns || []).map((c) => ({
    id: `${c.kind}s.${c.name}`, label: readable(c.name), name: c.name, kind: c.kind, type: c.type,
    steps: Boolean(c.steps), // a metric with curve points
  }));
  return fixed.concat(named);
}

/** A row's raw value for a column id ("params.x", "metrics.x", or a fixed column). */
export function raw(row, id) {
  if (id.startsWith("params.")) return row.params ? row.params[id.slice(7)] : undefined;
  if (id.startsWith("metrics.")) return row.metrics ? row.metrics[id.slice(8)] : undefined;
  return row[id];
}

/** A value as a number (NaN and inf included), or null when it is not one. */
export function num(value, type) {
  if (typeof value === "number") return value;
  if (typeof value === "boolean") return value ? 1 : 0;
  // A string column may hold the text "NaN": only a number column's strings are read back.
  if (typeof value === "string" && type !== "string" && value in NONFINITE) return NONFINITE[value];
  return null;
}

/** A value as the table shows it: always text (never HTML), NaN and inf named. */
export function text(value, type) {
  if (value === null || value === undefined) return "";
  const n = typeof value === "boolean" ? null : num(value, type);
  if (n === null) return readable(String(value));
  if (Number.isNaN(n)) return "NaN";
  if (!Number.isFinite(n)) return n > 0 ? "inf" : "-inf";
  if (Number.isInteger(n)) return String(n);
  return String(Number(n.toPrecision(5)));
}

/** A column's value as the table, the groups' keys and the charts' labels show it: `text`,
 * and a param logged as None "None" (null; one not logged is undefined, shown blank):
 * scikit-learn's max_depth=None, no limit, read as blank, as if not logged. */
export function shownValue(value, column) {
  return value === null && column.kind === "param" ? "None" : text(value, column.type);
}

// A lone surrogate: half of a UTF-16 pair without its other half.
const LONE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** `text` with each lone surrogate written as its escape, `caf\udce9.csv`: what a file name
 * that is not UTF-8 holds (the REST answers carry it exactly, as JSON's escape), which a page
 * draws as U+FFFD, the byte lost. The run's parameters, the CLI and the cell show it so. */
export function readable(text) {
  return text.replace(LONE, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

function missing(value, type) {
  const n = num(value, type);
  return value === null || value === undefined || (n !== null && Number.isNaN(n));
}

/** Rows sorted by a column as the server sorts: missing and NaN last either way, numbers
 * before strings. Stable, so ties keep the order the rows came in. */
export function sortRows(rows, column, desc, valueOf = (row, c) => raw(row, c.id)) {
  if (!column) return rows.slice();
  const present = [], absent = [];
  for (const row of rows) (missing(valueOf(row, column), column.type) ? absent : present).push(row);
  const sign = desc ? -1 : 1;
  present.sort((a, b) => {
    const x = valueOf(a, column), y = valueOf(b, column);
    const nx = num(x, column.type), ny = num(y, column.type);
    if (nx !== null && ny !== null) return sign * (nx - ny || 0);
    if (nx !== null) return -sign;
    if (ny !== null) return sign;
    return sign * byCodePoint(String(x), String(y));
  });
  return present.concat(absent);
}

/** Rows unsorted, as both hosts show them: by map index within each run and task (runs and
 * tasks in the order they first come). The kernel answers a node's rows by index, the REST
 * routes in the order their values were logged: a sweep whose children finished out of order
 * read [3, 0, 2, 1] in the run's tab and [0, 1, 2, 3] in the cell. Stable otherwise. */
export function byIndex(rows) {
  const rank = new Map();
  const rankOf = (key) => {
    if (!rank.has(key)) rank.set(key, rank.size);
    return rank.get(key);
  };
  const keyed = rows.map((row, at) => [rankOf(`${row.run_id}\u0000${row.task}`), row.map_index ?? -1, at, row]);
  keyed.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  return keyed.map((k) => k[3]);
}

/** Text in the server's order (Python's, by code point; JavaScript's < compares UTF-16 units,
 * which differ only past U+FFFF), not the locale's: the same order whether a run's rows sort
 * here or on the server, in the CLI or pandas. */
const SURROGATE = /[\uD800-\uDFFF]/;
function byCodePoint(x, y) {
  if (x === y) return 0;
  if (!SURROGATE.test(x) && !SURROGATE.test(y)) return x < y ? -1 : 1;
  const a = Array.from(x), b = Array.from(y);
  for (let i = 0; i < a.length && i < b.length; i++) {
    if (a[i] !== b[i]) return a[i].codePointAt(0) - b[i].codePointAt(0);
  }
  return a.length - b.length;
}

/** Columns whose value differs between rows (a column with one value everywhere says
 * nothing when comparing). A row without a value (undefined: a failed child never logged
 * fit_seconds) does not count: the column kept for "0.6 or nothing" drew a flat 0.6-0.6 axis
 * in the parallel coordinates. A param logged as None (null) is a value. */
export function varying(columns, rows) {
  return columns.filter((c) => {
    const seen = new Set();
    for (const row of rows) {
      const value = raw(row, c.id);
      if (value === undefined) continue;
      seen.add(text(value, c.type));
      if (seen.size > 1) return true;
    }
    return false;
  });
}

// One filter term: "auc>0.9", "criterion=gini", "depth!=3", or words looked for in any cell;
// "double quotes" hold spaces ("learning rate">0.01, model="random forest"), as on the server
// (core/experiment_filter.py).
const WORD = /(?:"[^"]*"?|[^\s"])+/g;
const TERM = /^((?:"[^"]*"|[^<>=!"])+?)(>=|<=|!=|=|>|<)(.*)$/s;
const unquoted = (text) => text.replace(/"/g, "");

function parseTerms(columns, query) {
  return (query.match(WORD) || []).map((term) => {
    const m = TERM.exec(term);
    const label = m && unquoted(m[1]);
    const column = m && columns.find((c) => c.label === label || c.id === label);
    return column ? { column, op: m[2], value: unquoted(m[3]) }
      : { words: unquoted(term).toLowerCase(), named: m ? label : null };
  }).filter((t) => t.column || t.words);
}

/** The names `query` compares (auc>0.9) that no column has, as typed: such a term is looked
 * for as words, as the server does, and mostly matches nothing; a typo (acu>0.9) emptied the
 * table with no word of why. */
export function unknownNames(columns, query) {
  return parseTerms(columns, query).filter((t) => t.named).map((t) => t.named);
}

/** Keeps the rows that match every term of `query` (space-separated), each cell read as the
 * table shows it (`shownValue`): a param logged as None matches "opt=None", as on the server. */
export function filterRows(rows, columns, query) {
  const terms = parseTerms(columns, query);
  if (!terms.length) return rows;
  return rows.filter((row) => terms.every((t) => {
    if (t.words) return columns.some((c) => shownValue(raw(row, c.id), c).toLowerCase().includes(t.words));
    const value = raw(row, t.column.id);
    const n = num(value, t.column.type), wanted = Number(t.value);
    if (t.op === "=" || t.op === "!=") {
      const same = shownValue(value, t.column) === t.value || (n !== null && n === wanted);
      return t.op === "=" ? same : !same;
    }
    if (n === null || Number.isNaN(wanted)) return false;
    return t.op === ">" ? n > wanted : t.op === "<" ? n < wanted : t.op === ">=" ? n >= wanted : n <= wanted;
  }));
}

/** The best of `rows` for a metric (the largest, or smallest with `lowest`), by its
 * task run id, or null; for groups, by their mean. */
export function best(rows, column, lowest, valueOf = (row, c) => num(raw(row, c.id), c.type)) {
  let found = null, top = null;
  for (const row of rows) {
    const v = valueOf(row, column);
    if (v === null || v === undefined || Number.isNaN(v)) continue;
    if (top === null || (lowest ? v < top : v > top)) { top = v; found = row; }
  }
  return found;
}

/** Numbers of a column, NaN left out (it has no place in a mean) but counted (`nan`: said
 * in the cell, so a diverged seed is not hidden in its group's mean); null when none. */
function stats(values) {
  const numbers = values.filter((v) => v !== null);
  const xs = numbers.filter((v) => !Number.isNaN(v));
  const nan = numbers.length - xs.length;
  if (!xs.length) return nan ? { mean: NaN, std: NaN, min: NaN, max: NaN, n: 0, nan } : null;
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, std, min: Math.min(...xs), max: Math.max(...xs), n: xs.length, nan };
}

/** A group's values of a text (or mixed) column, as [text, how many] most common first: a
 * param that varies within the groups (criterion, when grouped by depth) or the task runs'
 * states, which were left out of the grouped table. */
function tally(values, type) {
  const counts = new Map();
  for (const v of values) {
    if (v === null || v === undefined) continue;
    const shown = text(v, type);
    counts.set(shown, (counts.get(shown) || 0) + 1);
  }
  if (!counts.size) return null;
  return { tally: [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)) };
}

/** A group's values of a number param, as the setting it is: its lowest and highest and how
 * many different values (a None, or NaN, one of them); null when no row logged it. */
function setting(values, type) {
  const logged = values.filter((v) => v !== undefined);
  if (!logged.length) return null;
  const numbers = logged.map((v) => num(v, type)).filter((n) => n !== null && !Number.isNaN(n));
  const count = new Set(logged.map((v) => (v === null ? "None" : text(v, type)))).size;
  const [min, max] = numbers.length ? [Math.min(...numbers), Math.max(...numbers)] : [NaN, NaN];
  return { setting: { min, max, count, none: logged.includes(null) } };
}

/** Rows grouped by the values of `keys` (columns), a value and its text alike (3 and "3",
 * which runs may log for one setting, show alike and the filter depth=3 keeps both: one
 * group; not rounded as shown, so close settings stay apart); each other column aggregated
 * (numbers and bools by `stats`, text by `tally`). A group: {group: true, id, key: {colId:
 * value}, n, agg: {colId: stats or tally}, rows}; its key holds its first row's values. */
export function group(rows, keys, columns) {
  const numeric = columns.filter((c) => !keys.includes(c) && aggregated(c));
  const groups = new Map();
  for (const row of rows) {
    const values = keys.map((k) => raw(row, k.id));
    const id = JSON.stringify(values.map((v) => (v === null || v === undefined ? null : String(v))));
    if (!groups.has(id)) {
      const key = {};
      keys.forEach((k, i) => { key[k.id] = values[i]; });
      groups.set(id, { group: true, id, key, rows: [] });
    }
    groups.get(id).rows.push(row);
  }
  for (const g of groups.values()) {
    g.n = g.rows.length;
    g.agg = {};
    for (const c of numeric) {
      const values = g.rows.map((r) => raw(r, c.id));
      // A param is a setting the rows were given, not a measurement: what values it took
      // (seeds 0 to 9), not their mean ("4.5 ± 3.0 (0.0–9.0)" read as a measured seed).
      const s = g.agg[c.id] = c.kind === "param" && c.type === "number" ? setting(values, c.type)
        : c.type === "number" || c.type === "bool" ? stats(values.map((v) => num(v, c.type)))
          : tally(values, c.type);
      // A metric only some of a group's rows logged (a failed seed, an early stop) read as
      // every row's: "3" for one value of four, beside n = 4.
      const missing = s && c.kind !== "fixed" ? g.rows.filter((r) => raw(r, c.id) === undefined).length : 0;
      if (missing) s.missing = missing;
    }
  }
  return [...groups.values()];
}

/** Whether a column is aggregated in a group: numbers, bools (as 1 and 0: how many true) and
 * text (how many of each value); not a column no row has a value of. */
export function aggregated(column) {
  return column.type !== "none";
}

/** A group's value for sorting and the best mark: its key, its count, or a column's mean. */
export function groupValue(g, column) {
  if (column.id === "n") return g.n;
  if (column.id in g.key) return g.key[column.id];
  const s = g.agg[column.id];
  if (s && s.tally) return s.tally[0][0];  // its most common value
  if (s && s.setting) return s.setting.count === 1 && s.setting.none ? null : s.setting.min;
  return s ? s.mean : null;
}

/** How a group's aggregate reads in a cell: a param's setting its values ("0–9 · 10 values"),
 * a measurement's "mean ± std (min–max)", and how many of its
 * values were NaN ("· 1 NaN"; all of them: "NaN") and of its rows logged none ("· 1 not
 * logged"); a bool's, "2 of 3 true". `shown`: how
 * each number reads (durations in seconds); by default to the std's second significant
 * digit, "0.9333 ± 0.0034 (0.9290–0.9370)": digits past it are noise, and cut the cell. */
export function aggText(s, type, shown = spread(s, type)) {
  if (!s) return "";
  const unlogged = s.missing ? ` · ${s.missing} not logged` : "";
  if (s.tally) {  // "gini" alone; else "2 values: gini ×3, entropy ×2"
    if (s.tally.length === 1) return s.tally[0][0] + unlogged;
    const most = s.tally.slice(0, 3).map(([value, n]) => `${value} ×${n}`).join(", ");
    return `${s.tally.length} values: ${most}${s.tally.length > 3 ? ", …" : ""}${unlogged}`;
  }
  if (s.setting) return settingText(s.setting, shown) + unlogged;
  if (!s.n) return "NaN" + unlogged;
  if (type === "bool") return `${Math.round(s.mean * s.n)} of ${s.n} true${unlogged}`;
  const t = shown;
  // Equal values: their mean and std as such, not the float noise of summing them (three
  // losses of 0.2 read "0.200000000000 ± 0.000000000000 (...)").
  const same = s.min === s.max;
  const cell = s.n > 1 ? `${t(same ? s.min : s.mean)} ± ${t(same ? 0 : s.std)} (${t(s.min)}–${t(s.max)})` : t(s.mean);
  return (s.nan ? `${cell} · ${s.nan} NaN` : cell) + unlogged;
}

/** A setting's values: the one value all rows took ("0.5", "None"), else "0–9 · 10 values". */
function settingText({ min, max, count, none }, shown) {
  if (count === 1) return none ? "None" : shown(min);
  const range = Number.isNaN(min) ? "" : `${shown(min)}–${shown(max)}`;
  const other = none ? `${range ? `${range}, ` : ""}None` : range || "NaN";
  return `${other} · ${count} values`;
}

/** The decimals of a group's std's second significant digit: what its numbers are read to
 * (digits past it are noise); null when it has no spread (a std of 0, one value, text). */
export function spreadDecimals(s) {
  if (!s || s.tally || s.setting || !(s.n > 1) || !Number.isFinite(s.std) || !(s.std > 0) || s.min === s.max) {
    return null;
  }
  return Math.min(12, Math.max(0, 1 - Math.floor(Math.log10(s.std))));
}

/** Numbers to the decimal of the std's second significant digit (a std of 0, or one value:
 * as `text` shows them). */
function spread(s, type) {
  const decimals = spreadDecimals(s);
  if (decimals === null) return (v) => text(v, type);
  return (v) => (Number.isFinite(v) ? v.toFixed(decimals) : text(v, type));
}
