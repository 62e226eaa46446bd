// The DAG panel's log area: a task run's lines (the newest MAX_LOG_LINES), the note on lines the
// store did not keep, and, while there are no lines, a word saying so. An empty area drew
// nothing, which read as a view still loading (or broken); a task run not started yet says
// that instead, since its lines cannot have come yet. Both hosts (the cell, a Lab run tab).
import { escapeBidi } from "./bidi.js";

const MAX_LOG_LINES = 2000;

function h(tag, attrs, text) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

/** The words for a task run's empty log: `run` as a "detail" message's `task_run`. */
export function emptyLogText(run) {
  return run && run.state === "Pending" ? "not started yet: no log lines" : "no log lines";
}

/** The log area's parts, to append to the panel: `logs` (the lines) and `cut` (the note). */
export function createLogPane() {
  const logs = h("div", { class: "labloom-logs" });
  // Lines the store did not keep (the Lab run tab's model says how many; the kernel's none).
  const cut = h("div", { class: "labloom-log-cut" });
  cut.hidden = true;
  const empty = h("div", { class: "labloom-log-empty", role: "status" });
  empty.hidden = true;
  let run = null;

  function lineOf(line) {
    const t = new Date(line.time * 1000).toLocaleTimeString();
    return h("div", { class: "labloom-log-line", "data-level": line.level }, `${t}  ${escapeBidi(line.text)}`);
  }

  function sayEmpty() {
    empty.textContent = emptyLogText(run);
    empty.hidden = !run || logs.childNodes.length > 0;
  }

  return {
    nodes: [logs, empty, cut],
    /** Lines that came after those shown. */
    append(lines) {
      const atBottom = logs.scrollHeight - logs.scrollTop - logs.clientHeight < 24;
      logs.append(...lines.map(lineOf));
      while (logs.childNodes.length > MAX_LOG_LINES) logs.firstChild.remove();
      if (atBottom) logs.scrollTop = logs.scrollHeight;
      sayEmpty();
    },
    /** The log of `taskRun` (none: a map node without a child picked, no log area). */
    show(taskRun, lines) {
      run = taskRun || null;
      logs.replaceChildren();
      logs.hidden = !run;
      this.append(lines || []);
    },
    showCut(text) {
      cut.textContent = text || "";
      cut.hidden = !text;
    },
  };
}
