// The words the DAG renderer (dag.js) says of states: the order counts are said in, which
// states are final, a map node's progress line and its panel's outcome, the header's counts.

// Every state, in the order counts are said. Each state's colour (a box's edge and tint, a
// progress bar's part, the timeline's bars and key, the run's state), in a shade that reads on
// the theme's background, is dag.css's (--labloom-mark): the one palette, which the static
// summary (src/labloom/notebook/widget/html.py) reads too.
export const ORDER = ["Pending", "Running", "Retrying", "Completed", "Cached", "Failed",
  "UpstreamFailed", "Cancelled", "Crashed"];
export const FINAL = new Set(["Completed", "Cached", "Failed", "UpstreamFailed", "Cancelled",
  "Crashed"]);

/** A map node's line under its name: "38/40 · Running". Ended with some children failed,
 * not all: "40/40 · 2 failed" (a red box saying "40/40 · Failed" read as all forty failed,
 * when a sweep under allow_failure lost two); while it runs, its bar's red part shows them.
 * The static drawing says the same (drawing.py). */
export function mapProgress(done, info) {
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
export function mapOutcome(info) {
  const failed = partlyFailed(info);
  return failed ? `${failed} of ${info.total} failed` : info.state;
}

/** The header's counts: "3 Running, 12 Completed". */
export function countsText(counts) {
  return ORDER.filter((k) => counts && counts[k]).map((k) => `${counts[k]} ${k}`).join(", ");
}
