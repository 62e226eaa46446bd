// The Experiments view's table, virtualized: only the rows in sight (and a few around them) are
// in the page, at fixed height, so 100,000 rows scroll as smoothly as 100. Rows come from
// `rowAt(i)`, which may answer null for a row not loaded yet (drawn as a placeholder); `need(a,
// b)` is told which rows are in sight, so the view can ask the server for their page.
// Every value is set as text (textContent), never parsed as HTML.

import { h } from "./expcontrols.js";

export const ROW_HEIGHT = 24;
const OVERSCAN = 8;

function widthOf(column) {
  if (column.wide) return 210;
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
  // The view: columns, count, rowAt(i), cell(row, column) -> text, keyOf(row), best (a key),
  // sort (a column id), desc, need(first, last).
  let view = { columns: [], count: 0, rowAt: () => null, cell: () => "", keyOf: () => "", need: () => {} };
  let template = "";
  let frame = 0;

  function drawHead() {
    const cells = view.columns.map((c) => {
      const sorted = view.sort === c.id;
      const cell = h("div", { class: "labloom-exp-th", role: "columnheader", tabindex: 0,
        "data-column": c.id, "data-kind": c.kind || "",
        "aria-sort": sorted ? (view.desc ? "descending" : "ascending") : "none",
        title: `${c.label}${c.kind === "param" || c.kind === "metric" ? ` (${c.kind})` : ""}: click to sort` },
      `${c.label}${sorted ? (view.desc ? " ▼" : " ▲") : ""}`);
      cell.addEventListener("click", () => onSort(c));
      cell.addEventListener("keydown", (ev) => { if (ev.key === "Enter") onSort(c); });
      return cell;
    });
    head.replaceChildren(...cells);
  }

  function drawRows() {
    frame = 0;
    const top = scroller.scrollTop;
    const height = scroller.clientHeight || 400;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(view.count, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN);
    view.need(first, last);
    const rows = [];
    for (let i = first; i < last; i++) {
      const row = view.rowAt(i);
      const el = h("div", { class: "labloom-exp-row", role: "row", "data-pos": i });
      el.style.top = `${i * ROW_HEIGHT}px`;
      el.style.gridTemplateColumns = template;
      if (!row) {
        el.classList.add("labloom-exp-loading");
        el.append(h("div", { class: "labloom-exp-td" }, "…"));
        rows.push(el);
        continue;
      }
      const key = view.keyOf(row);
      el.setAttribute("data-key", key);
      if (row.task_run_id) el.setAttribute("data-task-run-id", row.task_run_id);
      if (row.state) el.setAttribute("data-state", row.state);
      el.setAttribute("tabindex", "0");
      if (key === view.best) {
        el.classList.add("labloom-exp-best");
        el.setAttribute("title", "best for the chosen metric");
      }
      for (const c of view.columns) {
        const value = view.cell(row, c);
        el.append(h("div", { class: "labloom-exp-td", role: "cell", "data-column": c.id, title: value }, value));
      }
      el.addEventListener("click", () => onPick(row, el));
      el.addEventListener("keydown", (ev) => { if (ev.key === "Enter") onPick(row, el); });
      rows.push(el);
    }
    body.replaceChildren(...rows);
  }

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
