// A delete of ticked runs cut off midway, the store's server gone (503 or 504): the answer's
// JSON lists the runs deleted before it (docs/rest-api.md, POST runs/delete), so the panel drops
// their rows and keeps the others ticked. Before, they were named only in the message, the
// first 20, and every row stayed, the deleted ones too.

/** The runs a failed `POST runs/delete` deleted before it failed; [] when it names none. */
export function deletedBefore(error: unknown): string[] {
  const body = (error as { body?: unknown } | null)?.body;
  const deleted = (body as { deleted?: unknown } | null)?.deleted;
  if (!Array.isArray(deleted)) {
    return [];
  }
  return deleted.filter((id): id is string => typeof id === 'string');
}

/** Why a delete's result files stayed (`result_files.errors`: a file the results folder
 * refused, or the store's server gone before it said which runs name them, with the command
 * that frees them later), the first and how many more; '' when none. Before, the panel said
 * nothing of them. */
export function filesNotDeleted(result: unknown): string {
  const files = (result as { result_files?: unknown } | null)?.result_files;
  const errors = (files as { errors?: unknown } | null)?.errors;
  if (!Array.isArray(errors) || errors.length === 0) {
    return '';
  }
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
  return String(errors[0]) + more;
}
