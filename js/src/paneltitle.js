// The DAG panel's title and, for a map's child that left its map (`TaskRunLeftMap`: a retry
// split the map's input again into fewer items, or the flow body, run again, mapped over
// fewer), the note under it. Both hosts send the task run's `left_map` (its why): the cell's
// detail message (dag/model.py) and the Lab run tab's (`GET runs/{id}/logs?task=`). Before, a
// left child's panel read "fit[2] · Cancelled" as a child of a map the DAG shows Completed.

/**
 * The title's text: a task run's name, state and message, else the node's name and `state`.
 * @param {any} msg a "detail" message
 * @param {string} state the node's state as the title says it
 */
export function panelTitle(msg, state) {
  const run = msg.task_run;
  if (!run) return `${msg.name} · ${state}`;
  const index = run.index != null ? `[${run.index}]` : "";
  const what = `${run.name}${index} · ${run.state}${run.left_map ? " · left its map" : ""}`;
  // A child a retry cut off has its why as its message: the note says it, once.
  return run.message && run.message !== run.left_map ? `${what} · ${run.message}` : what;
}

/** The note under the title of a child that left its map ('' for any other). */
export function leftMapNote(run) {
  if (!run || !run.left_map) return "";
  const why = run.left_map.charAt(0).toUpperCase() + run.left_map.slice(1);
  return `${why}. This task run is history: the map no longer counts it among its children.`;
}
