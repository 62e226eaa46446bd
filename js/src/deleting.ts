// Deleting runs ticked in the Flows panel: a confirm dialog (JupyterLab's showDialog), then one
// POST runs/delete. The server applies `labloom delete`'s rules and says, per run it kept, why
// (still running, another user's, a process that may still write): the panel shows that.
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';

import { requestAPI } from './api';
import { filesNotDeleted } from './deletecut';

export interface IDeleted {
  deleted: string[];
  kept: { id: string; status: number; message: string }[];
  task_runs: number;
  result_files: {
    deleted: number;
    bytes: number;
    kept_shared: number;
    errors: string[];
  };
}

/** Ask, then delete `ids` (runs of `flow`); null when the user said no. */
export async function confirmAndDelete(
  ids: string[],
  flow: string,
  trans: TranslationBundle
): Promise<IDeleted | null> {
  const shown = ids.slice(0, 10).join(', ') + (ids.length > 10 ? ', …' : '');
  const answer = await showDialog({
    title: trans._n('Delete %1 run?', 'Delete %1 runs?', ids.length),
    body: trans.__(
      'Runs of %1: %2. Their task runs, logs, params and metrics leave the store, with the result files no other run uses. This cannot be undone.',
      flow,
      shown
    ),
    buttons: [
      Dialog.cancelButton({ label: trans.__('Cancel') }),
      Dialog.warnButton({ label: trans.__('Delete') })
    ]
  });
  if (!answer.button.accept) {
    return null;
  }
  return requestAPI<IDeleted>('runs/delete', {
    method: 'POST',
    body: JSON.stringify({ runs: ids })
  });
}

/** What a deletion did, in one line for the panel; the reasons of the runs it kept. */
export function deletedLabel(result: IDeleted, trans: TranslationBundle): string {
  const parts = [trans._n('Deleted %1 run.', 'Deleted %1 runs.', result.deleted.length)];
  for (const kept of result.kept) {
    parts.push(trans.__('Kept %1: %2', kept.id, kept.message));
  }
  const files = filesNotDeleted(result);
  if (files) {
    parts.push(trans.__('Result files not deleted: %1', files));
  }
  return parts.join(' ');
}
