// What the Experiments table shows of the rows experiments.js holds: each row's cells, or the
// rows grouped by some params, the other columns aggregated (expdata.aggText).
import { aggText, aggregated, best, group, groupValue, raw, shownValue, sortRows } from "./expdata.js";
import { seconds } from "./expcontrols.js";

/** A row's cell text by column. */
export function rowCells() {
  const cell = (row, c) => {
    if (c.id === "duration") return seconds(row.duration);
    if (c.id === "run_id") return row.run_id;
    return shownValue(raw(row, c.id), c);
  };
  return { cell };
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
  const cell = (g, c) => (c.id === "n" ? String(g.n) : c.id in g.key ? shownValue(g.key[c.id], c)
    : aggText(g.agg[c.id], c.type, c.id === "duration" ? seconds : undefined));
  // An aggregate's column as wide as its longest cell (exptable.js caps it): at a fixed
  // 210 px "0.6 ± 0 (0.6–0.6) · 2 not logged" read "0.6 ± 0 (0.6–0.6) · 2 not …".
  const sized = gcols.map((c) => (c.wide ? { ...c, chars: Math.max(0, ...sorted.map((g) => cell(g, c).length)) } : c));
  const view = { columns: sized, count: sorted.length, rowAt: (i) => sorted[i], keyOf: (g) => g.id,
    best: top ? top.id : null, cell, bestGroup: top && { group: top, keys, text: cell(top, bestCol) } };
  // The chart rings the starred group's rows: ringing the best single row (a lucky seed)
  // named another setting than the table's star.
  return { view, ringed: top ? top.rows : [] };
}
