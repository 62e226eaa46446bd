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
// until the run has ended, and draws the {event: "timeline"} answer. A click on a task run's bar
// selects that task run ({event: "select", node: null, task_run}), so the panel shows its logs
// and traceback as a click on its node does. The cell widget's module is this file bundled
// with Plot (esbuild, `jlpm build:widget`): nothing is fetched at run time.
//
// A map node's Experiments view (experiments.js: its children's params and metrics side by
// side, sorted, grouped, charted) opens from the node's panel; the header's Experiments button
// opens it for the whole run. It asks for rows a page at a time ({event: "experiments" |
// "curves"}); a click on a row selects that task run here, so the panel shows its logs.
//
// Its parts: daggraph.js draws the DAG's SVG, timelineview.js asks for and draws the timeline,
// runstates.js says states in words, paneltitle.js titles the panel, logpane.js shows its logs,
// childlist.js a map's children.
import { escapeBidi } from "./bidi.js";
import { createChildList } from "./childlist.js";
import { createGraph } from "./daggraph.js";
import { mountExperiments } from "./experiments.js";
import { closesOnEscape } from "./keys.js";
import { createLogPane } from "./logpane.js";
import { leftMapNote, panelTitle } from "./paneltitle.js";
import { FINAL, countsText, mapOutcome } from "./runstates.js";
import { createTimelineView } from "./timelineview.js";

function h(tag, attrs = {}, text) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function duration(seconds) {
  if (seconds == null) return "";
  const t = Math.max(0, Math.floor(seconds));
  const hh = Math.floor(t / 3600), mm = Math.floor((t % 3600) / 60), ss = t % 60;
  const pad = (n) => String(n).padStart(2, "0");
  return hh ? `${hh}:${pad(mm)}:${pad(ss)}` : `${mm}:${pad(ss)}`;
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

/**
 * Draw the run that `model` describes into `el`; returns a function that undoes it.
 * `showsMessage`: the host says the run's message itself (a Lab run tab, among its facts).
 * @param {{ model: any, el: HTMLElement, showsMessage?: boolean }} args
 * @returns {() => void}
 */
export function render({ model, el, showsMessage = false }) {
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
  let revealFor = null; // the task run a row or a bar picked: its panel is scrolled to
  const childList = createChildList(children, {
    onPick: (node, taskRun) => model.send({ event: "select", node, task_run: taskRun }),
    onPage: (node, page) => model.send({ event: "page", node, page }),
  });
  const experiments = mountExperiments({
    model, box: experimentsBox, visible: () => visible(),
    live: () => !FINAL.has((model.get("header") || {}).state),
    onPick: (row) => {
      const scope = experiments.scope;
      pickTaskRun(row.node ?? (scope ? scope.node : null), row.task_run_id);
    },
  });
  // A bar names its task run only: the kernel finds its node, a run tab shows it alone.
  const timeline = createTimelineView({ model, box: timelineBox, toggle: timelineToggle, root,
    visible: () => visible(), onPick: (taskRun) => pickTaskRun(null, taskRun) });
  // Reopened by a redrawn output (experiments.js remembers it): the button says so.
  experimentsToggle.setAttribute("aria-pressed", String(experiments.scope?.node === null));

  const graph = createGraph(graphBox, (id) => select(id));
  let selected = null;
  let shownDetail = null; // the detail message the panel shows
  let headerAt = 0; // browser time the header arrived: elapsed ticks without trusting clocks

  function drawGraph() {
    graph.draw(model.get("graph") || {});
    drawStates();
  }

  function drawStates() {
    graph.paint(model.get("states") || {});
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
    if (running) timeline.follow(); // a retry runs again
    tick();
  }

  // A background Lab tab is hidden with display: none or content-visibility: hidden (which
  // checkVisibility sees); a collapsed output with display: none; a background browser tab too.
  function visible() {
    if (document.hidden) return false;
    return typeof root.checkVisibility === "function" ? root.checkVisibility() : root.offsetParent !== null;
  }

  function tick() {
    const head = model.get("header") || {};
    if (head.elapsed == null) { elapsed.textContent = ""; return; }
    const live = head.end == null && !FINAL.has(head.state);
    elapsed.textContent = duration(head.elapsed + (live ? Date.now() / 1000 - headerAt : 0));
  }

  function everySecond() {
    tick();
    timeline.ask(false);
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
    graph.mark(selected);
    model.send({ event: "select", node: selected });
  }

  // A task run picked in the Experiments view or on the timeline: its panel (logs, traceback).
  function pickTaskRun(node, taskRun) {
    model.send({ event: "select", node, task_run: taskRun });
    // Shown once its answer comes (showDetail): scrolled to now, the panel was still hidden
    // or empty, and stayed under the chart, out of sight: the click seemed to do nothing.
    revealFor = taskRun;
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
      graph.mark(null);
      return;
    }
    panel.hidden = false;
    // The kernel owns the selection: every view of this widget follows it.
    selected = msg.node;
    graph.mark(selected);
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
    else if (msg.event === "timeline") timeline.show(msg);
    else if (msg.event === "error") error.textContent = msg.message;
  }

  // Escape closes the innermost thing open, as Lab's own panels do: the Experiments view when
  // the focus is in it, else the task run's panel (its logs), else the view, else the timeline;
  // the focus goes back to what opened it (kept on a hidden element, it would be lost). A key
  // that closed nothing goes on to Lab (a notebook's command mode).
  function closeInnermost(target) {
    const inExperiments = experiments.scope && experimentsBox.contains(target);
    if (!inExperiments && !panel.hidden) {
      const node = selected;
      select(selected);
      panel.hidden = true; // at once: the model's answer (no node) follows
      graph.focus(node);
      return true;
    }
    if (experiments.scope) {
      experiments.close();
      experimentsToggle.setAttribute("aria-pressed", "false");
      if (experimentsOpener && !experimentsOpener.hidden) experimentsOpener.focus();
      return true;
    }
    if (timeline.shown) {
      timeline.flip();
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
  timelineToggle.addEventListener("click", () => timeline.flip());
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
