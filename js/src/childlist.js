// A map node's children in the DAG's side panel: a pager and one page of task runs, each a
// button that selects its task run. The kernel sends the open page again whenever one of its
// children changed (up to ten times a second while the map runs), so the elements are kept by
// task run id and updated in place: a browser fires no click when the element pressed left the
// page before the release, and a list replaced in between lost the user's click (as the
// Experiments table's rows did, see exptable.js). One delegated listener picks the task run an
// element shows now. Every value is set as text (textContent), never parsed as HTML.

import { pressesButton } from "./keys.js";

function h(tag, attrs = {}, text) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function setAttr(el, name, value) {
  if (el.getAttribute(name) !== String(value)) el.setAttribute(name, String(value));
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/**
 * The child list in `box`. `onPick(node, taskRunId)` on a child's click (or Enter),
 * `onPage(node, page)` on the pager's buttons. A chip's colour is its data-state's (dag.css).
 * `shown(taskRunId)` marks the child whose logs the panel shows (null: none).
 * @returns {{ set: (msg: any) => void, clear: () => void, shown: (id: string | null) => void }}
 */
export function createChildList(box, { onPick, onPage }) {
  const pager = h("div", { class: "labloom-pager" });
  // Named for a screen reader, which read the bare glyphs as "single left-pointing angle
  // quotation mark".
  const prev = h("button", { class: "labloom-page-prev", type: "button", "aria-label": "previous page of children" }, "‹");
  const next = h("button", { class: "labloom-page-next", type: "button", "aria-label": "next page of children" }, "›");
  const where = h("span", { class: "labloom-page" });
  pager.append(prev, where, next);
  const list = h("div", { class: "labloom-child-list" });
  let shown = null; // the last `children` message drawn
  let drawn = new Map(); // task run id -> its element
  // The child whose logs the panel shows: among 100 alike chips ("[7] Completed") nothing said
  // which one a click had opened.
  let current = null;

  function markCurrent(el, id) {
    const on = id === current;
    el.classList.toggle("labloom-child-current", on);
    if (on) setAttr(el, "aria-current", "true");
    else el.removeAttribute("aria-current");
  }

  function showChild(el, child) {
    setAttr(el, "data-state", child.state);
    setAttr(el, "data-index", child.index);
    setText(el, `[${child.index}] ${child.state}`);
  }

  function set(msg) {
    shown = msg;
    setAttr(where, "data-page", msg.page);
    // "task runs": under a map node beside the Flows panel, "40 runs" read as flow runs.
    setText(where, `page ${msg.page + 1} of ${msg.pages} · ${msg.total} task runs`);
    prev.disabled = msg.page <= 0;
    next.disabled = msg.page >= msg.pages - 1;
    const kept = new Map();
    const els = msg.children.map((child) => {
      const el = drawn.get(child.id)
        || h("div", { class: "labloom-child", "data-task-run-id": child.id, role: "button", tabindex: 0 });
      kept.set(child.id, el);
      showChild(el, child);
      markCurrent(el, child.id);
      return el;
    });
    drawn = kept;
    // Only what left goes, and only what moved moves.
    for (const el of Array.from(list.children)) {
      if (!kept.has(el.getAttribute("data-task-run-id"))) el.remove();
    }
    let at = list.firstChild;
    for (const el of els) {
      if (el === at) at = at.nextSibling;
      else list.insertBefore(el, at);
    }
    if (pager.parentNode !== box) box.replaceChildren(pager, list);
  }

  function clear() {
    shown = null;
    current = null;
    drawn = new Map();
    list.replaceChildren();
    box.replaceChildren();
  }

  function picked(ev) {
    const el = ev.target instanceof Element ? ev.target.closest(".labloom-child") : null;
    if (el && shown) onPick(shown.node, el.getAttribute("data-task-run-id"));
  }

  list.addEventListener("click", picked);
  list.addEventListener("keydown", (ev) => {
    if (ev.target instanceof Element && ev.target.closest(".labloom-child") && pressesButton(ev)) picked(ev);
  });
  prev.addEventListener("click", () => { if (shown) onPage(shown.node, shown.page - 1); });
  next.addEventListener("click", () => { if (shown) onPage(shown.node, shown.page + 1); });
  function showing(id) {
    current = id;
    for (const [childId, el] of drawn) markCurrent(el, childId);
  }

  return { set, clear, shown: showing };
}
