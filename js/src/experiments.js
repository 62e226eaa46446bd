// The Experiments view: a sweep's task runs side by side, one row each (index, state, duration,
// params, metrics), sortable on any column, filterable, "only columns that vary", the best row
// marked for a chosen metric and direction, group-by on params with the rest aggregated
// (exprows.js: the cells), and charts (expchartbox.js). One module for both hosts, as dag.js
// is: it asks `model` with {event: "experiments" | "curves", req, node, ...} and takes the
// answers ({event, req, ...}, the shapes of `GET runs/{id}/experiments` and `.../curves`) from
// its "msg:custom" events: the cell widget's kernel answers from the live run
// (dag/experiment_rows.py), RestRunModel from the store, the Lab compare tab across runs.
//
// Bounded traffic: up to LOCAL_MAX rows are loaded (a page of 1,000 at a time) and sorted,
// filtered and grouped here; beyond that the table asks for the rows in sight, sorted and
// filtered by the server (the same filter grammar, core/experiment_filter.py), and groups and
// charts use the first SAMPLE rows by the current sort and filter (said so in the summary).
// While the run is live the view asks again once a second at most (less often when answers
// are slow), and the kernel answers "unchanged" when nothing happened.
import { best, byIndex, columnsOf, filterRows, sortRows, varying } from "./expdata.js";
import { summaryText } from "./expsummary.js";
import { escapeBidi } from "./bidi.js";
import { createTable } from "./exptable.js";
import { createChartBox } from "./expchartbox.js";
import { groupedView, marked, rowCells } from "./exprows.js";
import { LOWER_IS_BETTER, choose, filterExample, h, option } from "./expcontrols.js";

const PAGE = 1000;
const LOCAL_MAX = 5000;
const SAMPLE = 1000; // one page: a second would queue up before the rows a scroll asks for
const SERVER_PAGE = 200;
const INDEX_ORDER = "index_order"; // the hosts' sort for byIndex's order (docs/rest-api.md)
let views = 0;
// What each run's open view showed (scope and choices), by run id: when the cell's output is
// redrawn (the widget refreshes its display as the run ends) the new drawing, which gets a new
// model object from anywidget, opens the same view. A few runs only.
const remembered = new Map();
const REMEMBERED = 20;

/**
 * Mount the view in `box` (hidden until `open`). `onPick(row)` runs on a row click (the DAG
 * selects that task run, showing its logs and traceback); `extra` columns go first (the
 * compare tab's run column); `visible()` says whether asking is worth it, `live()` whether the
 * run may still change (then `tick` asks again).
 */
export function mountExperiments({ model, box, onPick, extra = [], visible = () => true, live = () => false,
  withCurves = true }) {
  const viewId = `e${++views}.${Math.random().toString(36).slice(2, 8)}`;
  const pending = new Map();
  let asked = 0;
  let scope = null; // {node, title}
  let data = fresh();
  // `dirs`: the direction the user chose for a metric, by its id. Any other metric's best is
  // its usual one (LOWER_IS_BETTER): one direction kept across metrics starred the worst
  // model as the best (auc's "highest" kept for a loss picked next).
  // `chosen`: the controls the user set (expcontrols.choose keeps those, re-picks the rest).
  const ui = { sort: null, desc: false, filter: "", vary: false, best: null, lowest: false, dirs: {},
    groups: [], chart: "scatter", x: null, y: null, by: null, curve: null, chosen: {} };
  const lowestFor = (id) => (id in ui.dirs ? ui.dirs[id] : LOWER_IS_BETTER.test(id));
  let loading = false, again = false, next = 0, settled = false, soon = false, stamp = 0;

  const root = h("div", { class: "labloom-experiments", role: "region", "aria-label": "experiments" });
  const titleEl = h("div", { class: "labloom-exp-title" });
  const close = h("button", { class: "labloom-exp-close", type: "button", title: "close",
    "aria-label": "close the experiments view" }, "×"); // named: "×" is read "times"
  const filter = h("input", { class: "labloom-exp-filter", type: "search",
    placeholder: "filter: words", "aria-label": "filter rows" }); // an example from the columns: controls()
  const vary = h("input", { class: "labloom-exp-vary", type: "checkbox" });
  const bestMetric = h("select", { class: "labloom-exp-best-metric", "aria-label": "best by metric" });
  const bestDir = h("select", { class: "labloom-exp-best-dir", "aria-label": "best is" });
  bestDir.append(option("highest", "highest"), option("lowest", "lowest"));
  const groupBox = h("span", { class: "labloom-exp-group", role: "group", "aria-label": "group by" });
  const kind = h("select", { class: "labloom-exp-chart-kind", "aria-label": "chart" });
  kind.append(option("scatter", "metric against param"), option("parallel", "parallel coordinates"));
  if (withCurves) kind.append(option("curves", "step curves"));
  const xSel = h("select", { class: "labloom-exp-x", "aria-label": "x" });
  const ySel = h("select", { class: "labloom-exp-y", "aria-label": "metric" });
  const bySel = h("select", { class: "labloom-exp-by", "aria-label": "colour by" });
  const xLabel = h("span", {}, "x:"), yLabel = h("span", {}, "y:"), byLabel = h("span", {}, "colour:");
  const summary = h("div", { class: "labloom-exp-summary", "aria-live": "polite" });
  const tableBox = h("div", { class: "labloom-exp-table-box" });
  const chartBox = h("div", { class: "labloom-exp-chart", role: "figure" });
  const varyLabel = h("label", { class: "labloom-exp-vary-label" });
  varyLabel.append(vary, document.createTextNode(" only columns that vary"));
  // A label and its controls kept on one line: wrapped apart as the bar narrowed, "group by:"
  // ended a line and its boxes began the next, nearer to "chart:" or "best:" than to it.
  const field = (label, ...controls) => h("span", { class: "labloom-exp-field" }, undefined, [label, ...controls]);
  const xField = field(xLabel, xSel), byField = field(byLabel, bySel);
  root.append(
    h("div", { class: "labloom-exp-bar" }, undefined, [titleEl, close]),
    h("div", { class: "labloom-exp-bar" }, undefined, [filter, varyLabel, field(h("span", {}, "best:"), bestMetric, bestDir),
      field(h("span", {}, "group by:"), groupBox)]),
    summary, tableBox,
    h("div", { class: "labloom-exp-bar" }, undefined, [field(h("span", {}, "chart:"), kind), xField,
      field(yLabel, ySel), byField]),
    chartBox);
  root.hidden = true;
  box.append(root);
  const table = createTable(tableBox, sortBy, (row) => { if (!row.group) onPick(row); });
  const chart = createChartBox(chartBox, ask);

  function fresh() {
    return { mode: "local", total: 0, rows: [], columns: [], version: null,
      positions: new Map(), asking: new Set(), bestRow: null, error: "" };
  }

  function ask(message) {
    const req = `${viewId}:${++asked}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { pending.delete(req); reject(new Error("no answer within 30 s")); }, 30000);
      pending.set(req, (answer) => {
        clearTimeout(timer);
        if (answer.error) reject(new Error(answer.error));
        else resolve(answer);
      });
      model.send({ ...message, node: scope ? scope.node : null, req });
    });
  }

  function onMessage(msg) {
    if (!msg || (msg.event !== "experiments" && msg.event !== "curves")) return;
    const done = pending.get(msg.req);
    if (done) { pending.delete(msg.req); done(msg); }
  }

  // A big run's filter is the server's (the whole run, not the first SAMPLE rows). Sorted on
  // nothing, rows come in the views' own order (INDEX_ORDER: by task, then map index), as
  // byIndex shows a small run's: a big run's pages came in the order logged, a sweep's
  // children finished out of order reading [3, 0, 2, 1] in the run tab, [0, 1, 2, 3] in the cell.
  function query(offset, limit, known) {
    const serverFilter = data.mode === "server" ? ui.filter.trim() : "";
    return { event: "experiments", sort: ui.sort || INDEX_ORDER, desc: ui.sort ? ui.desc : false,
      offset, limit, known, ...(serverFilter ? { filter: serverFilter } : {}) };
  }

  async function load() {
    if (!scope) return;
    if (loading) { again = true; return; } // asked for while a load is under way: once more after
    loading = true;
    const started = Date.now(), token = scope, final = !live();
    try {
      const asked = data.mode === "server" ? ui.filter.trim() : ""; // what query() sends
      const first = await ask(query(0, PAGE, data.version));
      if (token !== scope) return;
      if (first.unchanged) {
        settled = final;
        return;
      }
      if (first.partial) {
        // A run the server has not read whole yet: the rows read so far (sorted as asked)
        // drawn at once, the complete answer on the next tick (docs/rest-api.md).
        data = { ...fresh(), total: first.total, columns: first.columns, partial: true,
          rows: first.rows, mode: "server" };
        first.rows.forEach((row, i) => data.positions.set(i, row));
        stamp++;
        settled = false;
        soon = true;
        draw();
        return;
      }
      const got = { ...fresh(), total: first.total, columns: first.columns,
        version: first.version ?? null, filtered: asked,
        mode: first.total <= LOCAL_MAX && !asked ? "local" : "server" };
      if (got.mode === "server" && ui.filter.trim() && !asked) again = true; // a kept filter: ask the server
      let rows = first.rows;
      got.rows = rows;
      rows.forEach((row, i) => got.positions.set(i, row));
      if (got.mode === "server") {
        // The first page shows at once; the sample for filter, groups and charts follows.
        data = got;
        stamp++;
        draw();
      }
      const upTo = got.mode === "local" ? first.total : SAMPLE;
      for (let offset = first.next; offset != null && rows.length < upTo;) {
        const more = await ask(query(offset, Math.min(PAGE, upTo - rows.length)));
        if (token !== scope) return;
        more.rows.forEach((row, i) => got.positions.set(offset + i, row));
        rows = rows.concat(more.rows);
        offset = more.next;
      }
      got.rows = rows;
      if (got.mode === "server" && ui.best && ui.sort === ui.best && ui.desc === !ui.lowest) {
        got.bestRow = rows[0] || null; // sorted best first: no question needed
      } else if (got.mode === "server" && ui.best) {
        const top = await ask({ event: "experiments", sort: ui.best, desc: !ui.lowest, offset: 0, limit: 1,
          ...(asked ? { filter: asked } : {}) });
        got.bestRow = top.rows[0] || null;
      }
      if (got.bestRow) {
        // The first by the metric, values missing and NaN last: none of the rows has one when
        // the first has none (the filter kept only failed rows, which logged no auc).
        const column = columnsOf({ columns: got.columns }, extra).find((c) => c.id === ui.best);
        got.bestRow = (column && best([got.bestRow], column, ui.lowest)) || null;
      }
      data = got;
      stamp++;
      settled = final; // read after the run ended: nothing will change any more
    } catch (error) {
      data.error = `[labloom] experiments: ${error.message || error}`;
    } finally {
      loading = false;
      next = soon ? 0 : Date.now() + Math.min(30000, Math.max(1000, 5 * (Date.now() - started)));
      soon = false;
    }
    draw();
    if (again) {
      again = false;
      void load();
    }
  }

  // Server mode: the rows in sight that are not here yet, a page at a time.
  function need(first, last) {
    for (let page = Math.floor(first / SERVER_PAGE); page * SERVER_PAGE < last; page++) {
      const offset = page * SERVER_PAGE;
      if (data.positions.has(offset) || data.asking.has(offset)) continue;
      const mine = data;
      mine.asking.add(offset);
      void ask(query(offset, SERVER_PAGE)).then((answer) => {
        answer.rows.forEach((row, i) => mine.positions.set(offset + i, row));
        if (mine === data) table.redraw();
      }, () => mine.asking.delete(offset));
    }
  }

  function sortBy(column) {
    ui.desc = ui.sort === column.id ? !ui.desc : column.kind === "metric";
    ui.sort = column.id;
    if (data.mode === "server") reload();
    else draw();
  }

  function reload() {
    data.version = null;
    settled = false;
    void load();
  }

  function draw() {
    if (!scope) return;
    const all = columnsOf({ columns: data.columns }, extra);
    controls(all); // first: it picks the default best metric and chart axes
    example(all);
    const source = data.rows;
    const moving = new Set(varying(all, source).map((c) => c.id));
    // The task column only says something when the rows come from several tasks.
    let cols = all.filter((c) => c.id !== "task" || moving.has("task"));
    if (ui.vary) cols = cols.filter((c) => c.id === "map_index" || c.id === "run_id" || moving.has(c.id));
    const find = (id) => all.find((c) => c.id === id) || null;
    const sortCol = find(ui.sort), bestCol = find(ui.best);
    const local = data.mode === "local" || ui.groups.length > 0;
    // In index order (byIndex), whichever host answered: sorts and groups keep it for ties.
    const list = data.mode === "local" ? byIndex(filterRows(source, all, ui.filter)) : source;
    let view, bestRow = null, ringed = [];
    if (ui.groups.length) {
      ({ view, ringed } = groupedView({ list, all, cols, ui, sortCol, bestCol }));
    } else if (local) {
      const sorted = sortRows(list, sortCol, ui.desc);
      bestRow = bestCol ? best(list, bestCol, ui.lowest) : null;
      view = { columns: marked(cols), count: sorted.length, rowAt: (i) => sorted[i] };
    } else {
      bestRow = data.bestRow;
      view = { columns: marked(cols), count: data.total, rowAt: (i) => data.positions.get(i) || null, need };
    }
    // Numbers alike down each column of the rows loaded (a big run's: its sample).
    const { cell, title } = rowCells(cols, source);
    table.set({ cell, title, keyOf: (r) => r.task_run_id, best: bestRow ? bestRow.task_run_id : null,
      need: () => {}, ...view, sort: ui.sort, desc: ui.desc });
    root.setAttribute("data-mode", data.mode);
    root.setAttribute("data-total", String(data.total));
    root.setAttribute("data-partial", String(!!data.partial));
    // Escaped as the headers are (bidi.js): a column name in the hidden list or the best
    // metric's with a right-to-left override reversed the rest of the summary.
    summary.textContent = escapeBidi(summaryText({ data, ui, extra, all, cols, list, bestRow, bestCol,
      count: view.count, bestGroup: view.bestGroup, bestText: bestRow && bestCol ? cell(bestRow, bestCol) : "" }));
    if (bestRow) ringed = list.filter((r) => r.task_run_id === bestRow.task_run_id);
    chart.draw(list, all, cols, ringed, ui, stamp);
  }

  // The filter's example, for the rows and the best-by metric (computed again as they change).
  let exampleFor = "";
  function example(all) {
    const key = JSON.stringify([stamp, all.length, ui.best, ui.lowest]);
    if (key === exampleFor) return;
    exampleFor = key;
    filter.placeholder = filterExample(all, data.rows, ui.best, ui.lowest);
    // Wide enough to show it whole (the CSS's 20em fits a short one): long names made it longer.
    filter.style.width = `calc(${filter.placeholder.length}ch + 2em)`;
  }

  let controlsFor = "";
  function controls(all) {
    const key = JSON.stringify([all.map((c) => c.id + (c.steps ? "~" : "")), ui.chart]);
    if (key === controlsFor) return;
    controlsFor = key;
    const { metrics, axes, curved, keys } = choose(ui, all, LOWER_IS_BETTER);
    if (ui.best) ui.lowest = lowestFor(ui.best);
    const fill = (sel, cols, value, none) => {
      sel.replaceChildren(...(none ? [option("", none)] : []), ...cols.map((c) => option(c.id, escapeBidi(c.label))));
      sel.value = value || "";
    };
    fill(bestMetric, metrics, ui.best);
    bestDir.value = ui.lowest ? "lowest" : "highest";
    fill(xSel, axes, ui.x);
    // Only what the chart drawn reads: curves run along their steps, parallel coordinates
    // take every column as an axis and their colour from the metric.
    xField.hidden = xSel.hidden = ui.chart !== "scatter";
    byField.hidden = bySel.hidden = ui.chart === "parallel";
    yLabel.textContent = ui.chart === "parallel" ? "colour:" : "y:";
    if (ui.chart === "curves") fill(ySel, curved, ui.curve);
    else fill(ySel, metrics, ui.y);
    fill(bySel, keys, ui.by, "none");
    groupBox.replaceChildren(...keys.map((c) => {
      const label = h("label", { class: "labloom-exp-group-key" });
      const box = h("input", { type: "checkbox", value: c.id });
      box.checked = ui.groups.includes(c.id);
      box.addEventListener("change", () => {
        ui.groups = box.checked ? ui.groups.concat(c.id) : ui.groups.filter((g) => g !== c.id);
        draw();
      });
      label.append(box, document.createTextNode(` ${escapeBidi(c.label)}`));
      return label;
    }));
  }

  const on = (el, event, fn) => el.addEventListener(event, () => { fn(); draw(); });
  let filterTimer = null;
  filter.addEventListener("input", () => {
    ui.filter = filter.value;
    if (data.mode !== "server") return draw();
    clearTimeout(filterTimer); // a big run: the server filters, once the typing pauses
    filterTimer = setTimeout(reload, 300);
  });
  on(vary, "change", () => { ui.vary = vary.checked; });
  bestMetric.addEventListener("change", () => {
    ui.best = bestMetric.value;
    ui.chosen.best = true;
    ui.lowest = lowestFor(ui.best);
    bestDir.value = ui.lowest ? "lowest" : "highest";
    if (data.mode === "server") reload(); else draw();
  });
  bestDir.addEventListener("change", () => {
    ui.lowest = bestDir.value === "lowest";
    ui.dirs[ui.best] = ui.lowest;
    if (data.mode === "server") reload(); else draw();
  });
  on(kind, "change", () => { ui.chart = kind.value; });
  on(xSel, "change", () => { ui.x = xSel.value; ui.chosen.x = true; });
  on(ySel, "change", () => {
    const which = ui.chart === "curves" ? "curve" : "y";
    ui[which] = ySel.value;
    ui.chosen[which] = true;
  });
  on(bySel, "change", () => { ui.by = bySel.value; ui.chosen.by = true; });
  close.addEventListener("click", () => api.close());
  model.on("msg:custom", onMessage);
  // Remember the choices as they change, for a redrawn output (see `remembered`).
  root.addEventListener("change", () => queueMicrotask(remember));
  root.addEventListener("click", () => queueMicrotask(remember));
  function runOf() {
    const header = typeof model.get === "function" ? model.get("header") : null;
    return header && header.run_id ? header.run_id : null;
  }

  function remember() {
    const key = runOf();
    if (!scope || !key) return;
    remembered.delete(key);
    remembered.set(key, { scope, ui: { ...ui } });
    if (remembered.size > REMEMBERED) remembered.delete(remembered.keys().next().value);
  }

  const api = {
    get scope() { return scope; },
    /** Show the rows of `node` (a map node's id; null: the whole run). */
    open(node, title) {
      scope = { node, title };
      titleEl.textContent = title;
      root.setAttribute("data-node", node || "");
      root.hidden = false;
      data = fresh();
      controlsFor = "";
      chart.reset();
      settled = false;
      next = 0;
      summary.textContent = "Loading…";
      remember();
      void load();
    },
    close() {
      scope = null;
      remembered.delete(runOf());
      root.hidden = true;
      for (const done of pending.values()) done({ error: "closed" });
      pending.clear();
    },
    /** Once a second from the host: ask again until a read made after the run ended. */
    tick() {
      if (!scope || loading || settled || !visible() || Date.now() < next) return;
      void load();
    },
    destroy() {
      const kept = remembered.get(runOf());
      api.close();
      if (kept) remembered.set(runOf(), kept); // a redraw, not the user: the next drawing reopens it
      model.off("msg:custom", onMessage);
      root.remove();
    },
  };
  const kept = remembered.get(runOf());
  if (kept) {
    Object.assign(ui, kept.ui);
    filter.value = ui.filter;
    vary.checked = ui.vary;
    kind.value = ui.chart;
    api.open(kept.scope.node, kept.scope.title);
  }
  return api;
}

