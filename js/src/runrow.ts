// One run's row in the Flows panel: made once per run, then patched in place as pushed deltas
// and list reads change the run (only what differs is written), so a focused row keeps focus.
import { TranslationBundle } from '@jupyterlab/translation';

import { el, IRunSummary, originLabel, seconds, when } from './api';
import { escapeBidi } from './bidi';

// A run's task runs by state, in this order: "85 ✓ · 5 cancelled". A done/total count read
// "90/90" for a cancelled run, which looks complete.
const COUNT_WORDS: [string[], string][] = [
  [['Completed', 'Cached'], '✓'],
  [['Running', 'Retrying'], 'running'],
  [['Pending'], 'pending'],
  [['Failed'], 'failed'],
  [['UpstreamFailed'], 'upstream failed'],
  [['Cancelled'], 'cancelled']
];

export function countsLabel(counts: Record<string, number>, trans: TranslationBundle): string {
  const named = new Set(([] as string[]).concat(...COUNT_WORDS.map(([states]) => states)));
  const parts = COUNT_WORDS.map(
    ([states, word]): [number, string] => [
      states.reduce((sum, state) => sum + (counts[state] || 0), 0),
      trans.__(word)
    ]
  );
  for (const [state, n] of Object.entries(counts)) {
    if (!named.has(state)) {
      parts.push([n, state.toLowerCase()]); // a state this panel does not know yet
    }
  }
  const shown = parts.filter(([n]) => n > 0).map(([n, word]) => `${n} ${word}`);
  return shown.join(' · ') || trans.__('no task runs');
}

/** What a row asks of the panel: open its run, tick it (compare, delete), whether it is. */
export interface IRowHost {
  open(runId: string): void;
  pick(run: IRunSummary, on: boolean): void;
  picked: Set<string>;
  pickedFlow: string | null;
  trans: TranslationBundle;
}

/** A new row for `run`, its texts still empty (`fillRunRow` writes them). */
export function makeRunRow(run: IRunSummary, host: IRowHost): HTMLElement {
  const row = el('div', {
    class: 'labloom-run',
    role: 'listitem',
    tabindex: '0',
    'data-run-id': run.id
  });
  const pick = el('input', {
    class: 'labloom-run-pick',
    type: 'checkbox',
    'aria-label': `select run ${run.id} (compare, delete)`,
    title: 'tick runs of one flow, then Compare experiments or Delete'
  }) as HTMLInputElement;
  pick.checked = host.picked.has(run.id);
  pick.disabled = host.pickedFlow !== null && host.pickedFlow !== run.flow;
  pick.addEventListener('click', event => event.stopPropagation());
  pick.addEventListener('change', () => host.pick(run, pick.checked));
  row.append(
    pick,
    el('span', { class: 'labloom-run-flow' }),
    el('span', { class: 'labloom-state' }),
    el('span', { class: 'labloom-run-origin' }),
    el('span', { class: 'labloom-run-start' }),
    el('span', { class: 'labloom-run-duration' }),
    el('span', { class: 'labloom-run-done' })
  );
  row.addEventListener('click', () => host.open(run.id));
  row.addEventListener('keydown', event => {
    if (event.key === 'Enter') {
      host.open(run.id);
    }
  });
  return row;
}

/** Set a row's texts from its run: only what differs is written. */
export function fillRunRow(row: HTMLElement, run: IRunSummary, host: IRowHost): void {
  const trans = host.trans;
  const set = (node: Element, text: string) => {
    if (node.textContent !== text) {
      node.textContent = text;
    }
  };
  const attr = (node: Element, name: string, value: string) => {
    if (node.getAttribute(name) !== value) {
      node.setAttribute(name, value);
    }
  };
  attr(row, 'data-state', run.state);
  attr(row, 'title', escapeBidi(run.message) || trans.__('run %1', run.id));
  const [pick, flow, state, origin, start, duration, done] = Array.from(row.children);
  (pick as HTMLInputElement).checked = host.picked.has(run.id);
  (pick as HTMLInputElement).disabled = host.pickedFlow !== null && host.pickedFlow !== run.flow;
  set(flow, escapeBidi(run.flow));
  attr(flow, 'title', escapeBidi(run.flow)); // its whole name where the side bar cuts it
  set(state, run.state);
  attr(state, 'data-state', run.state);
  set(origin, originLabel(run.origin));
  set(start, when(run.started));
  set(duration, seconds(run.duration));
  set(done, countsLabel(run.counts || {}, trans));
  attr(done, 'title', trans.__('%1 of %2 task runs finished', run.done, run.total));
}
