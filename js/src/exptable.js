// The Experiments view's table, virtualized: only the rows in sight (and a few around them) are
// in the page, at fixed height, so 100,000 rows scroll as smoothly as 100. Rows come from
// `rowAt(i)`, which may answer null for a row not loaded yet (drawn as a placeholder); `need(a,
// b)` is told which rows are in sight, so the view can ask the server for their page.
// Every value is set as text (textContent), never parsed as HTML, its bidirectional controls
// written out (bidi.js) as the run tab's names and log lines are.

import { escapeBidi } from "./bidi.js";
import { h } from "./expcontrols.js";

export const ROW_HEIGHT = 24;
const OVERSCAN = 8;

// A character of a cell's monospace font (12 to 13 px: 7.2 to 7.8 px), and the cell's padding.
const CHAR = 8, PAD = 14, WIDEST = 640;

function widthOf(column) {
  // `chars`: its longest cell's length (a group's aggregate), shown whole up to WIDEST.
  if (column.wide) return Math.min(WIDEST, Math.max(210, Math.ceil((column.chars || 0) * CHAR) + PAD));
  if (column.id === "map_index" || column.id === "n") return 64;
  if (column.id === "duration") return 80;
  return 120;
}

/**
 * A table in `box`. `onSort(column)` on a header click, `onPick(row)` on a row click.
 * @returns {{ set: (view: any) => void, redraw: () => void }}
 */
export function createTable(box, onSort, onPick) {
  const scroller = h("div", { class: "labloom-exp-table", role: "table", tabindex: 0 });
  const head = h("div", { class: "labloom-exp-head", role: "row" });
  const body = h("div", { class: "labloom-exp-body", role: "rowgroup" });
  scroller.append(head, body);
  box.append(scroller);
  // The view: columns ({numeric}: right-aligned), count, rowAt(i), cell(row, column) -> text,
  // title(row, column) -> its title (optional: the text), keyOf(row), best (a key), sort (a
  // column id), desc, need(first, last).
  let view = { columns: [], count: 0, rowAt: () => null, cell: () => "", keyOf: () => "", need: () => {} };
  let template = "";
  let frame = 0;

  // The row elements of the last drawing, by key. A redraw (each live reload, each scroll)
  // updates them in place: a browser fires no click when the element pressed left the page
  // before the release, so rows replaced in between lost the click; a focused row keeps the focus.
  let drawn = new Map();
  const rowOf = new WeakMap(); // row element -> the row it shows now (none: a placeholder)

  // `full`: the value in full for its title (a number's every digit; the cell shows its column's).
  function setCell(el, j, column, shown, full) {
    const value = escapeBidi(shown);
    let cell = el.children[j];
    if (!cell) el.append(cell = h("div", { class: "labloom-exp-td" }));
    const attrs = column ? { role: "cell", "data-column": column.id, title: escapeBidi(full ?? shown),
      ...(column.numeric ? { "data-numeric": "" } : {}) } : {};
    for (const name of ["role", "data-column", "title", "data-numeric"]) {
      if (!(name in attrs)) cell.removeAttribute(name);
      else if (cell.getAttribute(name) !== attrs[name]) cell.setAttribute(name, attrs[name]);
    }
    if (cell.textContent !== value) cell.textContent = value;
  }

  function setAttr(el, name, value) {
    if (value == null) el.removeAttribute(name);
    else if (el.getAttribute(name) !== String(value)) el.setAttribute(name, String(value));
  }

  function showRow(el, i, row, key) {
    el.style.top = `${i * ROW_HEIGHT}px`;
    el.style.gridTemplateColumns = template;
    setAttr(el, "data-pos", i);
    el.classList.toggle("labloom-exp-loading", !row);
    const best = !!row && key === view.best;
    el.classList.toggle("labloom-exp-best", best);
    setAttr(el, "title", best ? "best for the chosen metric" : null);
    setAttr(el, "data-key", row ? key : null);
    setAttr(el, "data-task-run-id", row && row.task_run_id ? row.task_run_id : null);
    setAttr(el, "data-state", row && row.state ? row.state : null);
    setAttr(el, "tabindex", row ? "0" : null);
    const values = row ? view.columns.map((c) => view.cell(row, c)) : ["…"];
    values.forEach((value, j) => setCell(el, j, row ? view.columns[j] : null, value,
      row && view.title ? view.title(row, view.columns[j]) : undefined));
    while (el.children.length > values.length) el.lastChild.remove();
    if (row) rowOf.set(el, row);
    else rowOf.delete(el);
  }

  function drawRows() {
    frame = 0;
    const top = scroller.scrollTop;
    const height = scroller.clientHeight || 400;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(view.count, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN);
    view.need(first, last);
    const rows = [];
    const kept = new Map();
    for (let i = first; i < last; i++) {
      const row = view.rowAt(i);
      // A placeholder (not loaded yet) is kept by its position, a row by its key.
      const key = row ? `k:${view.keyOf(row)}` : `p:${i}`;
      const el = (!kept.has(key) && drawn.get(key))
        || h("div", { class: "labloom-exp-row", role: "row" });
      kept.set(key, el);
      showRow(el, i, row, key.slice(2));
      rows.push(el);
    }
    drawn = kept;
    place(body, rows);
  }

  // `parent`'s children become `els`: only what left goes, and only what moved moves (rows sit
  // at their `top`; the order is for assistive technology and Tab).
  function place(parent, els) {
    const staying = new Set(els);
    for (const el of Array.from(parent.children)) if (!staying.has(el)) el.remove();
    let at = parent.firstChild;
    for (const el of els) {
      if (el === at) at = at.nextSibling;
      else parent.insertBefore(el, at);
    }
  }

  // The header cells by column id, kept as the rows are (a sort click across a live reload).
  let heads = new Map();
  const columnOf = new WeakMap(); // header cell -> its column

  function drawHead() {
    const kept = new Map();
    const cells = view.columns.map((c) => {
      const sorted = view.sort === c.id;
      const cell = heads.get(c.id)
        || h("div", { class: "labloom-exp-th", role: "columnheader", tabindex: 0 });
      kept.set(c.id, cell);
      columnOf.set(cell, c);
      setAttr(cell, "data-column", c.id);
      setAttr(cell, "data-kind", c.kind || "");
      setAttr(cell, "data-numeric", c.numeric ? "" : null);
      setAttr(cell, "aria-sort", sorted ? (view.desc ? "descending" : "ascending") : "none");
      const kind = c.kind === "param" || c.kind === "metric" ? ` (${c.kind})` : "";
      // A metric logged with steps shows its last step's value, which nothing said: "loss"
      // read as the run's loss. Said in the header; the filter and sort keep the name (loss<0.2).
      const last = c.steps ? " (last step)" : "";
      const why = c.steps ? `, its last step's value in each row` : "";
      setAttr(cell, "title", `${escapeBidi(c.label)}${kind}${why}: click to sort`);
      const label = `${escapeBidi(c.label)}${last}${sorted ? (view.desc ? " ▼" : " ▲") : ""}`;
      if (cell.textContent !== label) cell.textContent = label;
      return cell;
    });
    heads = kept;
    place(head, cells);
  }

  function rowClicked(ev) {
    const el = ev.target instanceof Element ? ev.target.closest(".labloom-exp-row") : null;
    const row = el ? rowOf.get(el) : undefined;
    if (row) onPick(row, el);
  }

  function headerClicked(ev) {
    const cell = ev.target instanceof Element ? ev.target.closest(".labloom-exp-th") : null;
    const column = cell ? columnOf.get(cell) : undefined;
    if (column) onSort(column);
  }

  head.addEventListener("click", headerClicked);
  head.addEventListener("keydown", (ev) => { if (ev.key === "Enter") headerClicked(ev); });
  body.addEventListener("click", rowClicked);
  body.addEventListener("keydown", (ev) => { if (ev.key === "Enter") rowClicked(ev); });

  scroller.addEventListener("scroll", () => {
    if (!frame) frame = requestAnimationFrame(drawRows);
  });

  return {
    set(next) {
      view = next;
      template = view.columns.map((c) => `${widthOf(c)}px`).join(" ");
      const width = view.columns.reduce((a, c) => a + widthOf(c), 0);
      head.style.gridTemplateColumns = template;
      head.style.width = body.style.width = `${width}px`;
      body.style.height = `${view.count * ROW_HEIGHT}px`;
      scroller.setAttribute("aria-rowcount", String(view.count));
      drawHead();
      drawRows();
    },
    redraw: drawRows,
  };
}
