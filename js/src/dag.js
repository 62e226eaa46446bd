// labloom's live DAG renderer: the one module that draws a run's DAG, both in the notebook
// cell widget (anywidget loads this file as its ES module, see
// src/labloom/notebook/widget/anywidget.py, which ships a copy of it) and in JupyterLab's run view
// (js/src/runview.ts, fed by the REST API through an object with the same small interface).
//
// `model` is anything with get(name), on/off(event, callback) and send(message): the anywidget
// model, or RestRunModel. All geometry comes from Python (`graph`, `states`, `header`); this
// file only draws, and sends clicks back as messages ({event: "select" | "page" | "cancel" |
// "retry" | "timeline"}). User text is always set through textContent, never parsed as HTML.
// The selection is the model's (the kernel's): a new drawing asks for it ({event:
// "selection"}), so the panel the user had open stays open when the cell's output is redrawn
// at the run's end (a model that keeps no selection, as RestRunModel, ignores the question).
//
// The run's timeline (timeline.js, drawn with Observable Plot) sits under the DAG behind the
// Timeline button: while it shows, the renderer asks for it ({event: "timeline"}) once a second
// until the run has ended, and draws the {event: "timeline"} answer. The cell widget's module is
// this file bundled with Plot (esbuild, `jlpm build:widget`): nothing is fetched at run time.
//
// A map node's Experiments view (experiments.js: its children's params and metrics side by
// side, sorted, grouped, charted) opens from the node's panel; the header's Experiments button
// opens it for the whole run. It asks for rows a page at a time ({event: "experiments" |
// "curves"}); a click on a row selects that task run here, so the panel shows its logs.
import { escapeBidi } from "./bidi.js";
import { createChildList } from "./childlist.js";
import { mountExperiments } from "./experiments.js";
import { closesOnEscape, pressesButton } from "./keys.js";
import { createLogPane } from "./logpane.js";
import { leftMapNote, panelTitle } from "./paneltitle.js";
import { drawTimeline } from "./timeline.js";

const SVG = "http://www.w3.org/2000/svg";
// Every state, in the order counts are said. Each state's colour (a box's edge and tint, a
// progress bar's part, the timeline's bars and key, the run's state), in a shade that reads on
// the theme's background, is dag.css's (--labloom-mark): the one palette, which the static
// summary (src/labloom/notebook/widget/html.py) reads too.
const ORDER = ["Pending", "Running", "Retrying", "Completed", "Cached", "Failed", "UpstreamFailed",
  "Cancelled", "Crashed"];
const FINAL = new Set(["Completed", "Cached", "Failed", "UpstreamFailed", "Cancelled", "Crashed"]);
/** A map node's line under its name: "38/40 · Running". Ended with some children failed,
 * not all: "40/40 · 2 failed" (a red box saying "40/40 · Failed" read as all forty failed,
 * when a sweep under allow_failure lost two); while it runs, its bar's red part shows them.
 * The static drawing says the same (drawing.py). */
function mapProgress(done, info) {
  const failed = partlyFailed(info);
  return `${done}/${info.total} · ${failed ? `${failed} failed` : info.state}`;
}

/** How many children failed when a map ended with some, not all, failed; else 0. */
function partlyFailed(info) {
  const failed = (info.counts && info.counts.Failed) || 0;
  return FINAL.has(info.state) && failed < info.total ? failed : 0;
}

/** A map's state as its panel's title says it: "2 of 40 failed" as its node says "2 failed"
 * (the title said "Failed" beside a node saying "40/40 · 2 failed", for a run that Completed). */
function mapOutcome(info) {
  const failed = partlyFailed(info);
  return failed ? `${failed} of ${info.total} failed` : info.state;
}

// Each drawing gets its own arrow marker id: url(#id) resolves to the first element with that
// id in the whole page, which may sit in a hidden tab, where the marker would not render.
// This module is loaded twice in one Lab page, each copy counting from 1: in the cell widget's
// bundle (jupyterlab-manager's view) and in the Lab extension's (run tabs). A run tab opened
// beside a notebook drew its edges without arrow heads: its "labloom-arrow-1" was the cell's.
// Each copy's ids carry a tag of their own.
const copy = Math.random().toString(36).slice(2, 8);
let drawings = 0;

function h(tag, attrs = {}, text) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function s(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

function duration(seconds) {
  if (seconds == null) return "";
  const t = Math.max(0, Math.floor(seconds));
  const hh = Math.floor(t / 3600), mm = Math.floor((t % 3600) / 60), ss = t % 60;
  const pad = (n) => String(n).padStart(2, "0");
  return hh ? `${hh}:${pad(mm)}:${pad(ss)}` : `${mm}:${pad(ss)}`;
}

function countsText(counts) {
  return ORDER.filter((k) => counts && counts[k]).map((k) => `${counts[k]} ${k}`).join(", ");
}

// The dashboard link comes from the store, where anything may have been written: only a web
// page becomes a link (a javascript: URL would run in the page's origin). A relative link
// (a JupyterHub proxy path) resolves against the page, so it is http(s) too.
function webLink(url) {
  if (typeof url !== "string" || !url) return null;
  try {
    const protocol = new URL(url, document.baseURI).protocol;
    return protocol === "http:" || protocol === "https:" ? url : null;
  } catch {
    return null;
  }
}

function clip(text, n) {
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

function curve(points) {
  if (!points.length) return "";
  let d = `M${points[0][0]},${points[0][1]}`;
  for (let i = 1; i + 2 < points.length; i += 3) {
    d += ` C${points[i][0]},${points[i][1]} ${points[i + 1][0]},${points[i + 1][1]} ${points[i + 2][0]},${points[i + 2][1]}`;
  }
  return d;
}

/**
 * Draw the run that `model` describes into `el`; returns a function that undoes it.
 * `showsMessage`: the host says the run's message itself (a Lab run tab, among its facts).
 * @param {{ model: any, el: HTMLElement, showsMessage?: boolean }} args
 * @returns {() => void}
 */
export function render({ model, el, showsMessage = false }) {
  const arrowId = `labloom-arrow-${copy}-${++drawings}`;
  const root = h("div", { class: "labloom-widget" });
  const header = h("div", { class: "labloom-header" });
  const flow = h("span", { class: "labloom-flow" });
  const runState = h("span", { class: "labloom-run-state" });
  const elapsed = h("span", { class: "labloom-elapsed" });
  const counts = h("span", { class: "labloom-counts" });
  const dashboard = h("a", { class: "labloom-dashboard", target: "_blank", rel: "noopener" }, "Dask dashboard");
  const cancel = h("button", { class: "labloom-cancel", type: "button" }, "Cancel");
  const retry = h("button", { class: "labloom-retry", type: "button" }, "Retry");
  const timelineToggle = h("button", { class: "labloom-timeline-toggle", type: "button",
    "aria-pressed": "false" }, "Timeline");
  const experimentsToggle = h("button", { class: "labloom-experiments-toggle", type: "button",
    "aria-pressed": "false" }, "Experiments");
  header.append(flow, runState, elapsed, counts, dashboard, cancel, retry, timelineToggle,
    experimentsToggle);
  // What the run says while it goes on (a flow's retry: "attempt 1 of 3 failed: ...; attempt 2
  // starts in 600s"), else the cell showed a bare Running through the wait. A Lab run tab says
  // the run's message among its facts (runview.ts): there no line is made.
  const note = showsMessage ? null : h("div", { class: "labloom-run-message" });
  if (note) note.hidden = true;
  const error = h("div", { class: "labloom-error" });
  const graphBox = h("div", { class: "labloom-graph" });
  const panel = h("div", { class: "labloom-panel" });
  const title = h("div", { class: "labloom-panel-title" });
  const leftNote = h("div", { class: "labloom-left-map-note", role: "note" });
  leftNote.hidden = true;
  const children = h("div", { class: "labloom-children" });
  const traceback = h("pre", { class: "labloom-traceback" });
  const logs = createLogPane();
  const experimentsOpen = h("button", { class: "labloom-experiments-open", type: "button" },
    "Experiments");
  experimentsOpen.hidden = true;
  panel.append(title, leftNote, experimentsOpen, children, traceback, ...logs.nodes);
  panel.hidden = true;
  const timelineBox = h("div", { class: "labloom-timeline", role: "figure",
    "aria-label": "timeline of the run's task runs by lane" });
  timelineBox.hidden = true;
  const experimentsBox = h("div", { class: "labloom-experiments-box" });
  root.append(...[header, note, error, graphBox, timelineBox, experimentsBox, panel].filter(Boolean));
  el.append(root);
  let experimentsOpener = null; // the button that opened the Experiments view: Escape's focus
  let revealFor = null; // the task run an Experiments row picked: its panel is scrolled to
  const childList = createChildList(children, {
    onPick: (node, taskRun) => model.send({ event: "select", node, task_run: taskRun }),
    onPage: (node, page) => model.send({ event: "page", node, page }),
  });
  const experiments = mountExperiments({
    model, box: experimentsBox, visible: () => visible(),
    live: () => !FINAL.has((model.get("header") || {}).state),
    onPick: (row) => {
      const scope = experiments.scope;
      model.send({ event: "select", node: row.node ?? (scope ? scope.node : null), task_run: row.task_run_id });
      // Shown once its answer comes (showDetail): scrolled to now, the panel was still hidden
      // or empty, and stayed under the chart, out of sight: the click seemed to do nothing.
      revealFor = row.task_run_id;
    },
  });
  // Reopened by a redrawn output (experiments.js remembers it): the button says so.
  experimentsToggle.setAttribute("aria-pressed", String(experiments.scope?.node === null));

  let nodeEls = new Map(); // node id -> {g, rect, sub, bar}
  let selected = null;
  let shownDetail = null; // the detail message the panel shows
  let headerAt = 0; // browser time the header arrived: elapsed ticks without trusting clocks
  // The timeline: asked for while shown; `asked` is when the pending question left (a lost
  // answer is asked again after a while), `next` when to ask again, `settled` once an answer
  // shows the run ended.
  let timeline = { shown: false, asked: 0, next: 0, settled: false, drawn: "" };

  function drawGraph() {
    const graph = model.get("graph") || {};
    graphBox.replaceChildren();
    nodeEls = new Map();
    // A small pad so the outermost boxes' strokes are not clipped.
    const w = (graph.width || 0) + 8, ht = (graph.height || 0) + 8;
    const svg = s("svg", { class: "labloom-dag", width: w, height: ht, viewBox: `-4 -4 ${w} ${ht}` });
    const defs = s("defs");
    const marker = s("marker", { id: arrowId, viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    marker.append(s("path", { d: "M0,0 L10,5 L0,10 z", fill: "#71717a" }));
    defs.append(marker);
    svg.append(defs);
    for (const e of graph.edges || []) {
      svg.append(s("path", { class: "labloom-edge", d: curve(e.points), "data-source": e.source,
        "data-target": e.target, "marker-end": `url(#${arrowId})` }));
    }
    for (const n of graph.nodes || []) {
      const g = s("g", { class: "labloom-node", "data-node-id": n.id, "data-kind": n.kind,
        "data-state": "Pending", transform: `translate(${n.x - n.w / 2},${n.y - n.h / 2})`,
        tabindex: 0, role: "button" });
      const tip = s("title");
      tip.textContent = escapeBidi(n.name);
      const rect = s("rect", { class: "labloom-node-box", width: n.w, height: n.h, rx: 6 });
      const label = s("text", { class: "labloom-node-name", x: 10, y: 17 });
      label.textContent = clip(escapeBidi(n.name), 22);
      const sub = s("text", { class: "labloom-node-sub", x: 10, y: 32 });
      g.append(tip, rect, label, sub);
      let bar = null;
      if (n.kind === "map") {
        bar = s("g", { class: "labloom-progress", transform: `translate(10,${n.h - 14})` });
        bar.append(s("rect", { class: "labloom-progress-track", width: n.w - 20, height: 6, rx: 3, fill: "#e4e4e7" }));
        // One part per state, kept and resized by each update (up to ten a second): a part
        // replaced between a press on it and the release would lose the click on the node.
        for (const k of ORDER) {
          if (k === "Pending") continue;
          bar.append(s("rect", { class: "labloom-progress-part", "data-state": k, height: 6 }));
        }
        g.append(bar);
      }
      g.addEventListener("click", () => select(n.id));
      g.addEventListener("keydown", (ev) => { if (pressesButton(ev)) select(n.id); });
      nodeEls.set(n.id, { g, rect, sub, bar, width: n.w - 20 });
    }
    graphBox.append(svg);
    for (const [id, parts] of nodeEls) {
      svg.append(parts.g);
      parts.g.classList.toggle("labloom-selected", id === selected);
    }
    drawStates();
  }

  function drawStates() {
    const states = model.get("states") || {};
    for (const [id, parts] of nodeEls) {
      const info = states[id] || { state: "Pending", counts: {}, total: 0 };
      parts.g.setAttribute("data-state", info.state);
      if (parts.bar) {
        const done = ORDER.filter((k) => FINAL.has(k)).reduce((a, k) => a + (info.counts[k] || 0), 0);
        parts.sub.textContent = mapProgress(done, info);
        parts.g.setAttribute("data-done", done);
        parts.g.setAttribute("data-total", info.total);
        let x = 0;
        for (const part of parts.bar.querySelectorAll(".labloom-progress-part")) {
          const n = info.counts[part.getAttribute("data-state")] || 0;
          const w = n && info.total ? (parts.width * n) / info.total : 0;
          if (w) part.removeAttribute("display");
          else part.setAttribute("display", "none");
          part.setAttribute("x", x);
          part.setAttribute("width", w);
          x += w;
        }
      } else {
        parts.sub.textContent = info.state;
      }
    }
    if (shownDetail) showTitle(shownDetail);
  }

  function drawHeader() {
    const head = model.get("header") || {};
    headerAt = Date.now() / 1000;
    flow.textContent = escapeBidi(head.flow) || "flow run";
    runState.textContent = head.state || "";
    runState.setAttribute("data-state", head.state || "");
    root.setAttribute("data-run-id", head.run_id || "");
    root.setAttribute("data-state", head.state || "");
    counts.textContent = countsText(head.counts) || "no task runs yet";
    const running = !FINAL.has(head.state);
    if (note) {
      note.textContent = running ? escapeBidi(head.message || "") : "";
      note.hidden = !note.textContent;
    }
    const link = webLink(head.dashboard);
    dashboard.hidden = !link;
    if (link) dashboard.setAttribute("href", link);
    else dashboard.removeAttribute("href");
    cancel.disabled = !running;
    const c = head.counts || {};
    retry.disabled = running || !(c.Failed || c.UpstreamFailed || c.Cancelled || c.Crashed);
    if (running) timeline.settled = false; // a retry runs again: follow it
    tick();
  }

  // A background Lab tab is hidden with display: none or content-visibility: hidden (which
  // checkVisibility sees); a collapsed output with display: none; a background browser tab too.
  function visible() {
    if (document.hidden) return false;
    return typeof root.checkVisibility === "function" ? root.checkVisibility() : root.offsetParent !== null;
  }

  function askTimeline(force) {
    const now = Date.now();
    // Not while hidden, nor twice at once.
    if (!timeline.shown || !root.isConnected || (!force && !visible())) return;
    if (!force && (timeline.settled || now < timeline.next || now - timeline.asked < 10000)) return;
    timeline.asked = now;
    model.send({ event: "timeline" });
  }

  function showTimeline(msg) {
    // Asked again after five times what this answer took (at least a second, at most half a
    // minute): a run of 100,000 task runs takes the server most of a second to bucket, and an
    // open tab must not keep a core busy with it.
    const took = timeline.asked ? Date.now() - timeline.asked : 0;
    timeline.next = Date.now() + Math.min(30000, Math.max(1000, 5 * took));
    timeline.asked = 0;
    if (!timeline.shown) return;
    timeline.settled = FINAL.has(msg.state);
    // Redrawn only when it changed: a chart redrawn every second would lose the hover.
    const text = JSON.stringify({ ...msg, end: null });
    if (text === timeline.drawn) return;
    timeline.drawn = text;
    drawTimeline(timelineBox, msg, ORDER);
  }

  function toggleTimeline() {
    timeline.shown = !timeline.shown;
    timelineToggle.setAttribute("aria-pressed", String(timeline.shown));
    timelineBox.hidden = !timeline.shown;
    timeline.settled = false;
    timeline.drawn = "";
    if (timeline.shown) askTimeline(true);
  }

  function tick() {
    const head = model.get("header") || {};
    if (head.elapsed == null) { elapsed.textContent = ""; return; }
    const live = head.end == null && !FINAL.has(head.state);
    elapsed.textContent = duration(head.elapsed + (live ? Date.now() / 1000 - headerAt : 0));
  }

  function everySecond() {
    tick();
    askTimeline(false);
    experiments.tick();
  }

  function showExperiments(node, name) {
    const scope = experiments.scope;
    if (scope && scope.node === node) experiments.close();
    else experiments.open(node, node === null ? "Experiments · the whole run" : `Experiments · ${name}`);
    experimentsOpener = node === null ? experimentsToggle : experimentsOpen;
    experimentsToggle.setAttribute("aria-pressed", String(!!experiments.scope && experiments.scope.node === null));
  }

  function select(id) {
    selected = selected === id ? null : id;
    for (const [nid, parts] of nodeEls) parts.g.classList.toggle("labloom-selected", nid === selected);
    model.send({ event: "select", node: selected });
  }

  // The title of a map with no child picked follows the node's counts (the states), which
  // change without a new detail message while the map runs.
  function showTitle(msg) {
    const run = msg.task_run;
    const info = (model.get("states") || {})[msg.node];
    const state = msg.kind === "map" && info ? mapOutcome(info) : msg.state;
    title.textContent = escapeBidi(panelTitle(msg, state));
    title.setAttribute("data-state", run ? run.state : msg.state);
    leftNote.textContent = escapeBidi(leftMapNote(run));
    leftNote.hidden = !leftNote.textContent;
  }

  function showDetail(msg) {
    if (msg.node == null) {
      shownDetail = null;
      panel.hidden = true;
      selected = null;
      for (const parts of nodeEls.values()) parts.g.classList.remove("labloom-selected");
      return;
    }
    panel.hidden = false;
    // The kernel owns the selection: every view of this widget follows it.
    selected = msg.node;
    for (const [nid, parts] of nodeEls) parts.g.classList.toggle("labloom-selected", nid === selected);
    panel.setAttribute("data-selected-node", msg.node);
    const run = msg.task_run;
    panel.setAttribute("data-task-run-id", run ? run.id : "");
    shownDetail = msg;
    showTitle(msg);
    if (msg.kind !== "map") childList.clear();
    else childList.shown(run ? run.id : null);
    experimentsOpen.hidden = msg.kind !== "map";
    experimentsOpen.setAttribute("data-node", msg.node);
    experimentsOpen.setAttribute("data-name", msg.name || "");
    traceback.textContent = escapeBidi(msg.traceback);
    traceback.hidden = !msg.traceback;
    logs.show(run, msg.lines);
    logs.showCut(run && msg.cut);
    if (run && run.id === revealFor) {
      revealFor = null;
      panel.scrollIntoView({ block: "nearest" });
    }
  }

  function onMessage(msg) {
    if (msg.event === "detail") showDetail(msg);
    else if (msg.event === "children" && msg.node === selected) childList.set(msg);
    else if (msg.event === "log" && panel.getAttribute("data-task-run-id") === msg.task_run) {
      logs.append(msg.lines);
      if ("cut" in msg) logs.showCut(msg.cut);
    }
    else if (msg.event === "timeline") showTimeline(msg);
    else if (msg.event === "error") error.textContent = msg.message;
  }

  // Escape closes the innermost thing open, as Lab's own panels do: the Experiments view when
  // the focus is in it, else the task run's panel (its logs), else the view, else the timeline;
  // the focus goes back to what opened it (kept on a hidden element, it would be lost). A key
  // that closed nothing goes on to Lab (a notebook's command mode).
  function closeInnermost(target) {
    const inExperiments = experiments.scope && experimentsBox.contains(target);
    if (!inExperiments && !panel.hidden) {
      const node = selected !== null ? nodeEls.get(selected) : null;
      select(selected);
      panel.hidden = true; // at once: the model's answer (no node) follows
      if (node) node.g.focus();
      return true;
    }
    if (experiments.scope) {
      experiments.close();
      experimentsToggle.setAttribute("aria-pressed", "false");
      if (experimentsOpener && !experimentsOpener.hidden) experimentsOpener.focus();
      return true;
    }
    if (timeline.shown) {
      toggleTimeline();
      timelineToggle.focus();
      return true;
    }
    return false;
  }

  root.addEventListener("keydown", (ev) => {
    if (closesOnEscape(ev) && closeInnermost(ev.target)) {
      ev.preventDefault();
      ev.stopPropagation();
    }
  });
  cancel.addEventListener("click", () => model.send({ event: "cancel" }));
  retry.addEventListener("click", () => { error.textContent = ""; model.send({ event: "retry" }); });
  timelineToggle.addEventListener("click", toggleTimeline);
  experimentsToggle.addEventListener("click", () => showExperiments(null, ""));
  experimentsOpen.addEventListener("click", () => showExperiments(
    experimentsOpen.getAttribute("data-node"), experimentsOpen.getAttribute("data-name")));
  model.on("change:graph", drawGraph);
  model.on("change:states", drawStates);
  model.on("change:header", drawHeader);
  model.on("msg:custom", onMessage);
  const timer = setInterval(everySecond, 1000);
  drawGraph();
  drawHeader();
  model.send({ event: "selection" });

  return () => {
    clearInterval(timer);
    experiments.destroy();
    root.remove();
    model.off("change:graph", drawGraph);
    model.off("change:states", drawStates);
    model.off("change:header", drawHeader);
    model.off("msg:custom", onMessage);
  };
}
