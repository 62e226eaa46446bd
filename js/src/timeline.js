// A run's timeline: one lane per thread or Dask worker thread, each task run a bar coloured by
// its state, from the store's start and end times; when a run has too many task runs for bars
// (more than 3,000), each lane is cut into time buckets that show how long it was busy and in
// which states. The data is the same in both hosts: `GET runs/{id}/timeline` for the Lab run
// tab, a `timeline` message from the kernel for the cell widget (src/labloom/dag/timeline.py
// computes it for both). dag.js shows it under the DAG behind its Timeline button.
//
// The charting library, chosen here for the whole project (the Experiments charts of issue 19
// use it too): Observable Plot, not Vega-Lite.
// - Size. The cell widget's ES module must carry its library (below), and it is loaded into
//   every notebook output that shows a run: Plot with the parts of d3 it uses adds about
//   300 kB minified to the widget; Vega-Lite needs vega (its runtime, parser, scenegraph and
//   renderers), vega-lite and vega-embed: about 900 kB to 1 MB minified.
// - What JupyterLab ships. JupyterLab renders Vega-Lite output (its vega5-extension), but as a
//   mime renderer loaded on demand, not a module an extension may import: a Lab extension
//   that draws with vega bundles its own copy anyway, and the cell widget (an anywidget, also
//   shown by Notebook 7, VS Code and Voila) can use nothing of Lab's. So "Lab has it" saves
//   nothing; what stays true is that Altair users read Vega-Lite specs, and a chart here may
//   still be exported as one later without changing the renderer.
// - Offline. Nothing is fetched at run time in either host: Plot is bundled into the Lab
//   extension by JupyterLab's builder and into the widget's module by esbuild at build time
//   (`jlpm build:widget`, shipped in the wheel), so a machine with no internet (a hospital's)
//   draws the same charts. Plot draws plain SVG into the page (no canvas, no eval, no web
//   worker), which the browser tests count and the page's own CSS variables can style.
import * as Plot from "@observablehq/plot";

const MIN_WIDTH = 360;
const LANE_HEIGHT = 18;
const MARGIN_RIGHT = 20;
// The narrowest a task run's bar is drawn, in pixels (Dask's task stream does the same).
const MIN_BAR_PX = 4;

function seconds(value) {
  if (value == null) return "";
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  if (value < 120) return `${value.toFixed(1)} s`;
  const m = Math.floor(value / 60);
  return m < 120 ? `${m} min ${Math.round(value % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

function clip(text, n) {
  return text.length > n ? "…" + text.slice(text.length - n + 1) : text;
}

/** The summary line over the chart (exported for the unit tests). */
export function summaryText(data) {
  if (!data.lanes.length) {
    return data.unstarted ? `No task run has started yet (${data.unstarted} waiting).` : "No task runs yet.";
  }
  const lanes = `${data.lanes.length} lane${data.lanes.length === 1 ? "" : "s"}`;
  let text = `${data.total} task run${data.total === 1 ? "" : "s"} on ${lanes} over ${seconds(data.end - data.start)}`;
  if (data.mode === "buckets") {
    text += `, grouped in ${data.buckets.count} buckets of ${seconds(data.buckets.width)} per lane (bar length: time busy)`;
  }
  if (data.unstarted) text += `; ${data.unstarted} never started`;
  if (data.left) {
    const drawn = data.mode === "bars" ? "faded bars" : "the faded part of a bucket";
    text += `; ${data.left} left their map (${drawn}: history, outside the map's counts)`;
  }
  return text + ".";
}

// A map's child that left its map (a retry split its input again into fewer items, or the flow
// body, run again, mapped over fewer: `TaskRunLeftMap`) keeps its bar, where and when it ran,
// but faded and saying so: the DAG and its counts no longer hold it, and a bar like the others
// read as a child of the map still (a Cancelled one in a Completed map).
/** The bars' rows as the chart draws them, each with its hover text (exported for the tests). */
export function barRows(data) {
  return data.bars.map((b) => ({
    ...b,
    title: `${b.name} · ${b.state}${b.left ? " · left its map" : ""} · ${seconds(b.end - b.start)} (at ${seconds(b.start)})`,
  }));
}

// In bucket mode each cell is drawn as its busy seconds laid end to end from the bucket's start,
// one piece per state: a full bucket was busy all along, a gap is idle time. The children that
// left their map come last, faded as their bars are, and the hover text counts them apart.
/** The buckets' pieces as the chart draws them, each with its hover text (exported for tests). */
export function bucketPieces(data) {
  const width = data.buckets.width;
  const pieces = [];
  for (const cell of data.buckets.cells) {
    const parts = [[cell.busy, false], [cell.left_busy || {}, true]];
    const total = parts.reduce((sum, [busy]) => sum + Object.values(busy).reduce((a, b) => a + b, 0), 0);
    const scale = total > width ? width / total : 1; // a lane of unknown place may overlap
    let x = cell.bucket * width;
    let counts = countText(cell.counts);
    if (cell.left_counts) counts += `${counts ? "; " : ""}left their map: ${countText(cell.left_counts)}`;
    const title = `${seconds(cell.bucket * width)}–${seconds((cell.bucket + 1) * width)}: ${counts}; busy ${Math.round((100 * total) / width)}%`;
    for (const [busy, left] of parts) {
      for (const [state, time] of Object.entries(busy)) {
        const w = time * scale;
        pieces.push({ lane: cell.lane, state, start: x, end: x + w, title, ...(left ? { left } : {}) });
        x += w;
      }
    }
  }
  return pieces;
}

// A quick task run (10 ms in a minute's run) would be a sliver under a pixel that a user can
// neither see nor click, so each row is drawn at least `minSpan` seconds wide. Only the drawing
// widens: the hover text keeps the real start, end and duration. A widened bar may reach over
// the start of its lane's next bar (a thread runs the next task at once): the rows are drawn
// longest first, so the quick one lies on top, whole and clickable, and the next one, longer,
// shows and takes clicks past it. Capping a bar at the next one's start instead would leave it
// invisible again; back-to-back quick task runs still overlap one another (as in Dask's task
// stream), the last drawn on top.
/** The rows as drawn: each at least `minSpan` wide, longest first (exported for the tests). */
export function drawnRows(rows, minSpan) {
  const longestFirst = [...rows].sort((a, b) => b.end - b.start - (a.end - a.start));
  return longestFirst.map((r) => ({ ...r, end: Math.max(r.end, r.start + minSpan) }));
}

function countText(counts) {
  return Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(", ");
}

// Each bar carries its task run's state (data-state) and takes that state's colour from the
// stylesheet (dag.css, --labloom-mark), the shade the DAG's lines use: it reads 3:1 or more on
// the theme's background, and follows a switch of theme without a redraw. A fixed colour per
// state given to Plot would be one shade for both themes (the old ones read 2.2 to 2.8:1 on
// white for Pending, Retrying, Completed, Cached and UpstreamFailed, a Crashed red 2.9:1 on the
// dark theme). Plot draws a mark's rects in the order of its index (positions in `rows`).
function tagStates(rows) {
  return (index, scales, values, dimensions, context, next) => {
    const g = next(index, scales, values, dimensions, context);
    const rects = g.querySelectorAll("rect");
    index.forEach((i, n) => {
      if (!rects[n]) return;
      rects[n].setAttribute("data-state", rows[i].state);
      if (rows[i].id) rects[n].setAttribute("data-task-run-id", rows[i].id); // a bar, not a bucket
      if (rows[i].left) rects[n].setAttribute("data-left-map", "true");
    });
    return g;
  };
}

// The key: a swatch and a name per state drawn, coloured like the bars (Plot's own legend
// would paint its swatches with fixed colours).
function stateKey(states, left) {
  const key = document.createElement("div");
  key.className = "labloom-timeline-key";
  for (const state of states) {
    const item = document.createElement("span");
    item.className = "labloom-timeline-key-item";
    item.setAttribute("data-state", state);
    const swatch = document.createElement("span");
    swatch.className = "labloom-timeline-swatch";
    item.append(swatch, state);
    key.append(item);
  }
  if (left) {
    const item = document.createElement("span");
    item.className = "labloom-timeline-key-item labloom-timeline-key-left";
    const swatch = document.createElement("span");
    swatch.className = "labloom-timeline-swatch";
    item.append(swatch, "left its map");
    key.append(item);
  }
  return key;
}

/**
 * Draw the timeline answer `data` into `box` (replacing what was there).
 * @param {HTMLElement} box inside the DAG's `.labloom-widget` (whose stylesheet colours states)
 * @param {any} data the shape of `GET runs/{id}/timeline`
 * @param {string[]} order every state, in the order the key lists them
 * @param {(taskRun: string) => void} [onPick] a click on a task run's bar (not on a bucket: it
 *   holds many task runs) passes its id: the DAG opens its panel, logs and traceback
 */
export function drawTimeline(box, data, order, onPick) {
  const summary = document.createElement("div");
  summary.className = "labloom-timeline-summary";
  summary.textContent = summaryText(data);
  box.setAttribute("data-mode", data.mode);
  box.setAttribute("data-lanes", String(data.lanes.length));
  box.setAttribute("data-total", String(data.total));
  if (!data.lanes.length) {
    box.replaceChildren(summary);
    return;
  }
  const lanes = data.lanes.map((name) => clip(name, 40));
  const span = Math.max(data.end - data.start, 1e-6);
  const longest = Math.max(...lanes.map((l) => l.length));
  const width = Math.max(MIN_WIDTH, box.clientWidth || 640);
  const marginLeft = Math.min(280, 12 + longest * 6.5);
  // A bar (one task run, clickable) is drawn MIN_BAR_PX wide at least; a bucket's piece keeps a
  // sliver only, as its length says how long its lane was busy.
  const minSpan = data.mode === "bars" ? (MIN_BAR_PX * span) / (width - marginLeft - MARGIN_RIGHT) : span / 1500;
  const rows = drawnRows(data.mode === "bars" ? barRows(data) : bucketPieces(data), minSpan);
  const states = order.filter((k) => rows.some((r) => r.state === k));
  const chart = Plot.plot({
    width,
    height: 40 + lanes.length * LANE_HEIGHT,
    marginLeft,
    marginRight: MARGIN_RIGHT,
    x: { label: "seconds from the first start →", domain: [0, span] },
    y: { domain: lanes, label: null },
    marks: [
      Plot.barX(rows, { x1: "start", x2: "end", y: (r) => lanes[r.lane], title: "title", insetTop: 1, insetBottom: 1,
        render: tagStates(rows) }),
    ],
  });
  chart.classList.add("labloom-timeline-chart");
  if (onPick) {
    chart.addEventListener("click", (ev) => {
      const bar = ev.target instanceof Element ? ev.target.closest("rect[data-task-run-id]") : null;
      if (bar) onPick(bar.getAttribute("data-task-run-id"));
    });
  }
  box.replaceChildren(summary, stateKey(states, rows.some((r) => r.left)), chart);
}
