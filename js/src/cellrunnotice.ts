// The line a %%flow cell's output shows over its saved summary when labloom's server cannot
// draw the run (cellrun.ts): what is missing, and what to do. Plain, for the unit tests.
import type { TranslationBundle } from '@jupyterlab/translation';

// A run id as the server takes it (server_extension/validate.py): the id is read from the
// notebook, and goes into the API's paths.
const RUN_ID = /^[0-9a-f]{4,64}$/;

/** The line for a saved output whose run id is no run id (a notebook edited by hand), else
 * null: then ask the server. */
export function notARunId(runId: string, trans: TranslationBundle): string | null {
  return RUN_ID.test(runId)
    ? null
    : trans.__('this output names no labloom run (%1); the summary saved with it:', runId);
}

/** `error`: what requestAPI threw (a ServerConnection.ResponseError, or a network error). */
export function noStoredRun(error: unknown, runId: string, trans: TranslationBundle): string {
  const status: number = (error as any)?.response?.status ?? 0;
  const message = String((error as any)?.message ?? error);
  if (status === 404 && /no such run/.test(message)) {
    return trans.__(
      "labloom run %1 is not in labloom's store on this server (deleted, or kept under another " +
        'LABLOOM_HOME); the summary saved with the notebook:',
      runId
    );
  }
  if (status === 404) {
    // Not labloom's answer: its routes are not there.
    return trans.__(
      "labloom's server extension is not enabled on this server (`jupyter server extension " +
        'enable labloom`, then restart it); the summary saved with the notebook for run %1:',
      runId
    );
  }
  return trans.__(
    'labloom cannot read run %1 (%2); the summary saved with the notebook:',
    runId,
    message
  );
}
