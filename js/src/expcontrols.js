// Small helpers of the Experiments view's controls: elements built with text (never HTML),
// select options, the default choices, the filter's example, durations.
import { escapeBidi } from "./bidi.js";
import { num, raw, shownValue, text } from "./expdata.js";

/** An element with attributes, text and children; text is set as text, never parsed. */
export function h(tag, attrs = {}, text, children = []) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  el.append(...children);
  return el;
}

export function option(value, label) {
  return h("option", { value }, label);
}

/** Metrics whose best is the lowest by default (the user may choose the other way): losses
 * and errors, and the common scores of that kind by their usual names (perplexity, word and
 * character error rates, FID, negative log-likelihood), the short ones only as a whole word
 * ("val_wer", not "power"). */
export const LOWER_IS_BETTER =
  /loss|err|rmse|mae|mse|msle|mape|time|latency|perplexity|distance|(^|[^a-z])(ppl|nll|wer|cer|fid|cost|regret)([^a-z]|$)/i;

/** `current` if one of `columns` has that id, else the first column's id (or null). */
export function pick(current, columns) {
  if (current && columns.some((c) => c.id === current)) return current;
  return columns.length ? columns[0].id : null;
}

/** The metrics with curve points: those whose columns are marked `steps`, the one way the
 * cell's answers and the server's pages say it. One only a forgotten attempt logged (a retry,
 * a rerun) is not marked: it has no points. */
export function curveColumns(all) {
  return all.filter((c) => c.kind === "metric" && c.steps);
}

/** The controls' choices for the view's columns `all`: `ui.curve` (step curves), `ui.best`,
 * `ui.x`, `ui.y`, `ui.by`; returns what each select offers. A choice the user made (named in
 * `ui.chosen`) is kept while still offered; a default is chosen again as columns come: a view
 * opened as a sweep began, before any param or final score was logged, kept the index as the
 * chart's x and the loss curve as the best metric and the y after auc came. `keys`:
 * what rows are coloured and grouped by, the params and, in the compare tab, the run first
 * (its reason to be: a run's rows against another's; colouring by run by default). */
export function choose(ui, all, lowerIsBetter) {
  const params = all.filter((c) => c.kind === "param");
  const keys = all.filter((c) => c.id === "run_id").concat(params);
  const metrics = all.filter((c) => c.kind === "metric");
  const axes = params.concat(all.filter((c) => c.id === "duration" || c.id === "map_index"));
  // By default a final score (auc) rather than a curve's last point or a loss: what a sweep
  // is mostly judged by.
  const final = metrics.filter((c) => !c.steps);
  // None marked (a run without curves, a snapshot an older labloom wrote): every metric.
  const marked = curveColumns(all);
  const curved = marked.length ? marked : metrics;
  const chosen = ui.chosen || {};
  const kept = (name) => (chosen[name] ? ui[name] : null);
  ui.curve = pick(kept("curve"), curved);
  ui.best = pick(kept("best"), final.filter((c) => !lowerIsBetter.test(c.name)).concat(final, metrics));
  ui.x = pick(kept("x"), axes.filter((c) => c.type === "number").concat(axes));
  ui.y = pick(kept("y"), metrics.filter((c) => c.id === ui.best).concat(metrics));
  // "" is the user's "none": kept too.
  const by = kept("by");
  ui.by = by !== null && (by === "" || all.some((c) => c.id === by)) ? by
    : (keys.find((c) => c.id !== ui.x) || { id: "" }).id;
  return { params, metrics, axes, curved, keys };
}

/** The filter box's example, from the view's own columns and values: "filter: auc>0.82
 * depth=4 words", which typed as shown keeps a row (the best one). The metric is `best` (the
 * view's best-by metric, `lowest` if lower is better: "loss<0.12") or else the first with
 * numbers. A fixed "auc>0.9 criterion=gini" named columns most views do not have, and emptied
 * the table. A name or value with a space or an operator is quoted, as the filter reads it. */
export function filterExample(all, rows, best = null, lowest = false) {
  const quoted = (s) => (/[\s"<>=!]/.test(s) ? `"${s.replace(/"/g, "")}"` : s);
  const terms = [];
  let from = rows;
  const numbers = (c) => c.kind === "metric" && c.type === "number"
    && rows.some((r) => Number.isFinite(num(raw(r, c.id), c.type)));
  const chosen = all.find((c) => c.id === best && numbers(c));
  const metric = chosen || all.find(numbers);
  if (metric) {
    const low = Boolean(chosen) && lowest;
    const at = (r) => num(raw(r, metric.id), metric.type);
    const xs = rows.map(at).filter(Number.isFinite).sort((a, b) => (low ? b - a : a - b));
    const top = xs[xs.length - 1], mid = xs[Math.floor((xs.length - 1) / 2)];
    const op = (low ? "<" : ">") + (mid === top ? "=" : "");
    terms.push(`${quoted(metric.label)}${op}${text(mid, "number")}`);
    from = rows.filter((r) => at(r) === top);
  }
  const param = all.find((c) => c.kind === "param" && from.some((r) => raw(r, c.id) !== undefined));
  if (param) {
    const row = from.find((r) => raw(r, param.id) !== undefined);
    terms.push(`${quoted(param.label)}=${quoted(shownValue(raw(row, param.id), param))}`);
  }
  return escapeBidi(`filter: ${terms.concat("words").join(" ")}`);
}

/** A task run's duration as the table shows it: "0.52 s", "2 min 5 s". */
export function seconds(value) {
  if (value === null || value === undefined) return "";
  if (value < 60) return `${value.toFixed(value < 10 ? 2 : 1)} s`;
  const m = Math.floor(value / 60);
  return m < 120 ? `${m} min ${Math.round(value % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}
