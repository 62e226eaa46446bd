// Step curves across runs for the compare tab (compareview.ts), as a run's tab draws them:
// each run's `runs/{id}/experiments/curves` is asked for that run's task runs among those
// the view shows (a task run's id starts with its run's id and a dot), and the answers are
// put together in the shape of one (docs/rest-api.md).

/** The path to ask of each run, or none for a run with no task run among `taskRuns`. */
export function curvePaths(
  runIds: string[],
  metric: string,
  taskRuns: string[] | null
): string[] {
  const paths: string[] = [];
  for (const runId of runIds) {
    const query = new URLSearchParams({ metric });
    if (taskRuns) {
      const mine = taskRuns.filter(id => id.startsWith(`${runId}.`));
      if (!mine.length) {
        continue;
      }
      query.set('task_runs', mine.join(','));
    }
    paths.push(`runs/${encodeURIComponent(runId)}/experiments/curves?${query}`);
  }
  return paths;
}

/** The runs' answers as one: every point, the totals added up. */
export function mergeCurves(metric: string, answers: any[]): any {
  return {
    metric,
    total: answers.reduce((sum, answer) => sum + answer.total, 0),
    truncated: answers.some(answer => answer.truncated),
    points: ([] as any[]).concat(...answers.map(answer => answer.points))
  };
}
