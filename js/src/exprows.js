// What the Experiments table shows of the rows experiments.js holds: each row's cells (numbers
// in their column's one format, expnumbers.js), or the rows grouped by some params, a group's
// other params as the settings they took and its measurements as mean ± std (expdata.aggText),
// in one format down each column.
import { aggText, aggregated, best, group, groupValue, raw, shownValue, sortRows } from "./expdata.js";
import { formatNumber, fullText, groupsFormat, numberFormat, numeric } from "./expnumbers.js";
import { seconds } from "./expcontrols.js";

/** `columns` marked `numeric` (right-aligned by the table). */
export function marked(columns) {
  return columns.map((c) => (numeric(c) ? { ...c, numeric: true } : c));
}

/** A row's cell text and title by column, numbers formatted alike down each column of `rows`
 * (the rows loaded: a filter does not change a column's decimals as it is typed). */
export function rowCells(columns, rows) {
  const formats = new Map(columns.filter((c) => numeric(c) && c.id !== "duration")
    .map((c) => [c.id, numberFormat(rows.map((r) => raw(r, c.id)), c.type)]));
  const cell = (row, c) => {
    if (c.id === "duration") return seconds(row.duration);
    if (c.id === "run_id") return row.run_id;
    const value = raw(row, c.id);
    return formats.has(c.id) && value !== null ? formatNumber(formats.get(c.id), value, c.type) : shownValue(value, c);
  };
  const title = (row, c) => (formats.has(c.id) && raw(row, c.id) !== null ? fullText(raw(row, c.id), c.type) : cell(row, c));
  return { cell, title };
}

/**
 * The table's view of `list` grouped by `ui.groups` (ids of `all`), sorted by `sortCol` and the
 * best group marked for `bestCol`: its columns (the keys, n, then the metrics, the other
 * params, the states and durations), count, rowAt, cell; `ringed`, the best group's rows.
 */
export function groupedView({ list, all, cols, ui, sortCol, bestCol }) {
  const keys = ui.groups.map((id) => all.find((c) => c.id === id)).filter(Boolean);
  const groups = group(list, keys, all);
  // The metrics first after the keys and n: what a grouping is for (the seeds' mean auc)
  // in sight; the other params, then the states and durations, after them.
  const rest = cols.filter((c) => !keys.includes(c) && aggregated(c) && c.id !== "map_index");
  const rank = (c) => (c.kind === "metric" ? 0 : c.kind === "param" ? 1 : 2);
  const gcols = [...keys, { id: "n", label: "n", kind: "fixed", type: "number" },
    ...[0, 1, 2].flatMap((r) => rest.filter((c) => rank(c) === r)).map((c) => ({ ...c, wide: true }))];
  const sorted = sortCol ? sortRows(groups, gcols.find((c) => c.id === sortCol.id) || sortCol, ui.desc, groupValue) : groups;
  const top = bestCol ? best(groups, bestCol, ui.lowest, groupValue) : null;
  // A key as its ungrouped column shows it ("0.50" over "0.05").
  const { cell: keyCell } = rowCells(keys, list);
  // A setting's values as its ungrouped column reads; a measurement's mean ± std (min–max) to
  // the decimals of its column's widest spread, alike down the column.
  const formats = new Map(rest.filter((c) => numeric(c) && c.id !== "duration").map((c) => {
    const values = list.map((r) => raw(r, c.id));
    return [c.id, c.kind === "param" ? numberFormat(values, c.type) : groupsFormat(groups.map((g) => g.agg[c.id]), values, c.type)];
  }));
  const cell = (g, c) => {
    if (c.id === "n") return String(g.n);
    if (c.id in g.key) return keyCell(g.rows[0], c); // its key: its first row's values
    const format = formats.get(c.id);
    return aggText(g.agg[c.id], c.type, c.id === "duration" ? seconds
      : format ? (v) => formatNumber(format, v, c.type) : undefined);
  };
  // An aggregate's column as wide as its longest cell (exptable.js caps it): at a fixed
  // 210 px "0.6 ± 0 (0.6–0.6) · 2 not logged" read "0.6 ± 0 (0.6–0.6) · 2 not …".
  const sized = marked(gcols).map((c) => (c.wide ? { ...c, chars: Math.max(0, ...sorted.map((g) => cell(g, c).length)) } : c));
  const view = { columns: sized, count: sorted.length, rowAt: (i) => sorted[i], keyOf: (g) => g.id,
    best: top ? top.id : null, cell, title: cell, bestGroup: top && { group: top, keys, text: cell(top, bestCol) } };
  // The chart rings the starred group's rows: ringing the best single row (a lucky seed)
  // named another setting than the table's star.
  return { view, ringed: top ? top.rows : [] };
}
