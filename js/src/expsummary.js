// The Experiments view's summary line, under its controls: how many rows (or groups) it shows
// and why not all, which columns are hidden, and which row (or group) is the best.
import { raw, shownValue, text, unknownNames } from "./expdata.js";

/**
 * `data`: the view's rows as loaded (total, rows, mode, partial, filtered, error); `ui`: its
 * choices; `all`/`cols`: the columns there are and those shown; `list`: the rows the filter
 * keeps; `count`: the rows or groups in the table; `bestRow` (ungrouped) or `bestGroup`
 * ({group, keys, text}: grouped) the best for `bestCol`, `bestText` its value as its cell shows it.
 */
export function summaryText({ data, ui, extra, all, cols, list, bestRow, bestCol, count, bestGroup, bestText }) {
  if (data.error) return data.error;
  if (!data.total) return "No task run has logged params or metrics yet (labloom.log_params, log_metrics, @task(metrics=...)).";
  let s = `${count} ${ui.groups.length ? "groups" : "rows"}`;
  if (data.partial) s += " read so far (reading the rest of the run)";
  if (list.length !== data.rows.length) s += ` (${list.length} of ${data.rows.length} match the filter)`;
  if (data.mode === "server" && data.filtered) s += ` match the filter "${data.filtered}"`;
  const unknown = unknownNames(all, ui.filter);
  if (unknown.length) s += ` · no column ${unknown.map((n) => `"${n}"`).join(", ")}: looked for as words`;
  // Named: "1 column hidden" alone left the user to guess which, with no way to find out.
  const hidden = all.filter((c) => !cols.includes(c)).map((c) => c.label);
  if (hidden.length) {
    const names = hidden.length > 3 ? `${hidden.slice(0, 3).join(", ")}, …` : hidden.join(", ");
    s += ` · ${hidden.length} ${hidden.length === 1 ? "column" : "columns"} hidden (${names})`;
  }
  // Several runs side by side (Compare) share their indexes: the best row's run is named.
  const ofRun = extra.some((c) => c.id === "run_id") && bestRow ? ` of run ${bestRow.run_id}` : "";
  const value = bestText || (bestRow && bestCol ? text(raw(bestRow, bestCol.id), bestCol.type) : "");
  if (bestRow && bestCol) s += ` · best ${bestCol.label} ${value} at index ${bestRow.map_index}${ofRun}`;
  // Grouped (the seeds of each setting averaged), the best setting named: the summary said
  // nothing of it, the star in the table the one place to look, often scrolled out of sight.
  if (bestGroup && bestCol) {
    const { group, keys } = bestGroup;
    const at = keys.map((k) => `${k.label}=${shownValue(group.key[k.id], k)}`).join(", ");
    s += ` · best ${bestCol.label} ${bestGroup.text} at ${at} (${group.n} ${group.n === 1 ? "row" : "rows"})`;
  }
  if (!data.partial && data.mode === "server") s += ` · ${data.total} rows in all: the table pages from the server; groups and charts use the first ${data.rows.length} by the sort`;
  return s;
}
