// What a schedule's row says of its failure alerts when not all went out: those given up (the
// webhook refused them until their retries were spent) and those still being retried. Only
// `labloom schedule list` said so; a panel user never learnt that a failure told nobody.
// Plain text for textContent (the reasons hold a server's words); no @jupyterlab import, so
// jest reads it as it is.
import type { TranslationBundle } from '@jupyterlab/translation';

import type { ISchedule } from './api';

/** One note of a row: what happened, what to do about it (shown under it: in the title only,
 * the panel's narrow side bar cut the line before the reason and never showed the fix), and
 * its whole story for the title. */
export interface IAlertLine {
  text: string;
  fix: string | null;
  title: string;
}

/** The row's lines: `lost` while alerts given up since the last delivered one, `retrying`
 * while one has failed and waits for its next try; `time` says an ISO stamp as the panel
 * says times. */
export function alertLines(
  s: ISchedule,
  trans: TranslationBundle,
  time: (iso: string | null) => string
): { lost: IAlertLine | null; retrying: IAlertLine | null } {
  return { lost: lostLine(s, trans, time), retrying: retryingLine(s, trans, time) };
}

function lostLine(
  s: ISchedule,
  trans: TranslationBundle,
  time: (iso: string | null) => string
): IAlertLine | null {
  const lost = s.undelivered_alert;
  if (!lost) {
    return null;
  }
  const what = lost.run_id ? trans.__('run %1 %2', lost.run_id, lost.state) : lost.state;
  const head =
    lost.count > 1
      ? trans.__('%1 failure alerts not delivered since %2', lost.count, time(lost.since))
      : trans.__('Failure alert not delivered');
  const text = `${head}: ${lost.reason} · ${what} · ${time(lost.at)}`;
  const fix = trans.__('Check the webhook: `labloom schedule test-alert %1`', s.name);
  const title = [
    trans.__(
      '%1 (%2) given up %3 after %4 attempt(s): %5.',
      lost.count > 1 ? trans.__('%1 failure alerts not delivered; the last', lost.count) : head,
      what,
      lost.at,
      lost.attempts,
      lost.reason
    ),
    trans.__('Check the webhook with `labloom schedule test-alert %1`.', s.name),
    lost.run_id ? trans.__('The run: `labloom show %1`.', lost.run_id) : '',
    trans.__('This note goes once an alert of this schedule is delivered.')
  ]
    .filter(Boolean)
    .join(' ');
  return { text, fix, title };
}

function retryingLine(
  s: ISchedule,
  trans: TranslationBundle,
  time: (iso: string | null) => string
): IAlertLine | null {
  const pending = s.pending_alerts;
  // Not yet tried: on its way (most go at once), nothing to say.
  if (!pending || !pending.attempts) {
    return null;
  }
  const text =
    pending.count > 1
      ? trans.__(
          '%1 alerts retrying: %2, next %3',
          pending.count,
          pending.last_error ?? '?',
          time(pending.next_try)
        )
      : trans.__('alert retrying: %1, next %2', pending.last_error ?? '?', time(pending.next_try));
  const title = trans.__(
    '%1 failure alert(s) waiting to be sent; the oldest tried %2 time(s): %3, next try %4.',
    pending.count,
    pending.attempts,
    pending.last_error ?? '?',
    pending.next_try ?? '-'
  );
  // Still being retried: nothing for the user to do yet.
  return { text, fix: null, title };
}

/** A line per live `labloom serve` that will not run the schedule (its alerts go by mail, and
 * that serve's SMTP settings are bad): which serve, why, and the fix, which its reason names. */
export function refusedLines(
  s: ISchedule,
  trans: TranslationBundle,
  time: (iso: string | null) => string
): IAlertLine[] {
  return (s.refused_by ?? []).map(refusal => {
    const text = trans.__(
      'Not run by `labloom serve` pid %1 on %2: %3',
      refusal.pid,
      refusal.host,
      refusal.reason
    );
    const since = trans.__(
      'Refused since %1; another serve with good settings may still run it.',
      time(refusal.since)
    );
    return { text, fix: null, title: `${text}. ${since}` };
  });
}
