// The timeline under the DAG (dag.js), behind its Timeline button: while it shows, it is asked
// for ({event: "timeline"}) once a second until the run has ended, and each answer is drawn by
// timeline.js. A click on a task run's bar goes to `onPick` with the task run's id.
import { FINAL, ORDER } from "./runstates.js";
import { drawTimeline } from "./timeline.js";

/**
 * @param {{ model: any, box: HTMLElement, toggle: HTMLElement, root: HTMLElement,
 *   visible: () => boolean, onPick: (taskRun: string) => void }} args
 */
export function createTimelineView({ model, box, toggle, root, visible, onPick }) {
  // `asked` is when the pending question left (a lost answer is asked again after a while),
  // `next` when to ask again, `settled` once an answer shows the run ended.
  const timeline = { shown: false, asked: 0, next: 0, settled: false, drawn: "" };

  function ask(force) {
    const now = Date.now();
    // Not while hidden, nor twice at once.
    if (!timeline.shown || !root.isConnected || (!force && !visible())) return;
    if (!force && (timeline.settled || now < timeline.next || now - timeline.asked < 10000)) return;
    timeline.asked = now;
    model.send({ event: "timeline" });
  }

  function show(msg) {
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
    drawTimeline(box, msg, ORDER, onPick);
  }

  function flip() {
    timeline.shown = !timeline.shown;
    toggle.setAttribute("aria-pressed", String(timeline.shown));
    box.hidden = !timeline.shown;
    timeline.settled = false;
    timeline.drawn = "";
    if (timeline.shown) ask(true);
  }

  return {
    ask, show, flip,
    get shown() { return timeline.shown; },
    /** The run goes on again (a retry): follow it. */
    follow() { timeline.settled = false; },
  };
}
