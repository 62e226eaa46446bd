// The DAG itself, as dag.js shows it: an SVG of the nodes and edges Python laid out (`graph`),
// each node's box tinted by its state, a map node's progress bar split by state (`states`).
// A click or Enter/Space on a node is passed to `onSelect` with its id; the selection itself
// is the model's (dag.js marks the node it answers with).
import { escapeBidi } from "./bidi.js";
import { pressesButton } from "./keys.js";
import { FINAL, ORDER, mapProgress } from "./runstates.js";

const SVG = "http://www.w3.org/2000/svg";

// Each drawing gets its own arrow marker id: url(#id) resolves to the first element with that
// id in the whole page, which may sit in a hidden tab, where the marker would not render.
// This module is loaded twice in one Lab page, each copy counting from 1: in the cell widget's
// bundle (jupyterlab-manager's view) and in the Lab extension's (run tabs). A run tab opened
// beside a notebook drew its edges without arrow heads: its "labloom-arrow-1" was the cell's.
// Each copy's ids carry a tag of their own.
const copy = Math.random().toString(36).slice(2, 8);
let drawings = 0;

function s(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
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

function drawNode(n, onSelect) {
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
  g.addEventListener("click", () => onSelect(n.id));
  g.addEventListener("keydown", (ev) => { if (pressesButton(ev)) onSelect(n.id); });
  return { g, rect, sub, bar, width: n.w - 20 };
}

function paintNode(parts, info) {
  parts.g.setAttribute("data-state", info.state);
  if (!parts.bar) {
    parts.sub.textContent = info.state;
    return;
  }
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
}

/**
 * The DAG drawn into `box`: `draw(graph)` anew, `paint(states)` on each update, `mark(id)` the
 * selected node (null: none), `focus(id)` a node.
 * @param {HTMLElement} box
 * @param {(id: string) => void} onSelect
 */
export function createGraph(box, onSelect) {
  const arrowId = `labloom-arrow-${copy}-${++drawings}`;
  let nodeEls = new Map(); // node id -> {g, rect, sub, bar, width}
  let selected = null;

  function draw(graph) {
    box.replaceChildren();
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
    for (const n of graph.nodes || []) nodeEls.set(n.id, drawNode(n, onSelect));
    box.append(svg);
    for (const parts of nodeEls.values()) svg.append(parts.g);
    mark(selected);
  }

  function paint(states) {
    for (const [id, parts] of nodeEls) {
      paintNode(parts, states[id] || { state: "Pending", counts: {}, total: 0 });
    }
  }

  function mark(id) {
    selected = id;
    for (const [nid, parts] of nodeEls) parts.g.classList.toggle("labloom-selected", nid === id);
  }

  function focus(id) {
    const parts = id !== null ? nodeEls.get(id) : null;
    if (parts) parts.g.focus();
  }

  return { draw, paint, mark, focus };
}
