// The Experiments view's chart under its table (experiments.js): the chart `ui.chart` names
// (a metric against a param, parallel coordinates, step curves; drawn by expcharts.js), drawn
// again only when what it shows changed; step curves asked of the host (`ask`) and kept.
import { curves, parallel, scatter } from "./expcharts.js";
import { curveColumns, h } from "./expcontrols.js";

const MAX_CURVE_IDS = 200; // more rows than this: ask for every curve, keep the shown ones here

/** A chart in `chartBox`; `ask(message)` answers a {event: "curves"} question. */
export function createChartBox(chartBox, ask) {
  let shownChart = "", curveCache = null;
  const note = (words) => h("div", { class: "labloom-exp-chart-note" }, words);

  /** Draw `rows`' chart (`stamp`: the rows' version) from `all` columns, `cols` shown, `best` ringed. */
  function draw(rows, all, cols, best, ui, stamp) {
    const find = (id) => all.find((c) => c.id === id) || null;
    const x = find(ui.x), y = find(ui.chart === "curves" ? ui.curve : ui.y), by = find(ui.by);
    const key = JSON.stringify([stamp, ui.chart, ui.x, ui.y, ui.curve, ui.by, ui.filter, ui.best, ui.lowest, ui.vary,
      ui.groups, rows.length, chartBox.clientWidth]);
    if (key === shownChart) return;
    shownChart = key;
    chartBox.setAttribute("data-chart", ui.chart);
    const say = (words) => chartBox.replaceChildren(note(words));
    if (!y && rows.length && ui.chart === "curves") {
      return say('No step points yet: log_metric("loss", value, step=n) draws curves.');
    }
    if (!y || !rows.length) return say("Nothing to chart yet: no metric logged.");
    if (ui.chart === "scatter") {
      if (!x) return say("Nothing to chart against: no param logged.");
      const shown = cols.filter((c) => c.kind !== "fixed");
      chartBox.replaceChildren(scatter(chartBox, rows, { x, y, by, best, columns: shown }));
    } else if (ui.chart === "parallel") {
      const dims = cols.filter((c) => c.kind === "param" || c.kind === "metric");
      chartBox.replaceChildren(parallel(chartBox, rows, { dims, y, best }));
    } else {
      void drawCurves(rows, y, curveColumns(all), by, best, key, stamp);
    }
  }

  /** `marked`: the metric columns with curve points (none: a snapshot an older labloom wrote,
   * which marks none, so any metric is asked for). */
  async function drawCurves(rows, y, marked, by, best, key, stamp) {
    const metric = y.name;
    if (!y.steps && marked.length) {
      chartBox.replaceChildren(note(
        `${metric} was not logged with a step; metrics with steps: ${marked.map((c) => c.name).join(", ")}`));
      return;
    }
    const ids = rows.length <= MAX_CURVE_IDS ? rows.map((r) => r.task_run_id) : null;
    const cacheKey = JSON.stringify([stamp, metric, ids]);
    try {
      if (!curveCache || curveCache.key !== cacheKey) {
        curveCache = { key: cacheKey, answer: await ask({ event: "curves", metric, ...(ids ? { task_runs: ids } : {}) }) };
      }
      if (key !== shownChart) return; // asked again meanwhile
      const { chart, drawn } = curves(chartBox, curveCache.answer, rows, { by, best, label: metric });
      chartBox.replaceChildren(drawn ? chart
        : note(`No step points of ${metric}: log_metric("${metric}", value, step=n) draws curves.`));
    } catch (error) {
      chartBox.replaceChildren(note(`[labloom] curves: ${error.message || error}`));
    }
  }

  return { draw, /** Draw again whatever changed (a view opened anew). */ reset() { shownChart = ""; } };
}
