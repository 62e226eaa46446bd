// The Flows panel's Schedules: each schedule's times and last run, Pause/Resume, Run now and
// Run with… (the launch form), and whether a scheduler runs them at all.
import { TranslationBundle } from '@jupyterlab/translation';

import { el, ISchedule, IScheduleList, requestAPI, when } from './api';
import { LaunchSection } from './launch';

/** A schedule's next run as the panel says times; its ISO stamp when the browser cannot read it. */
function nextRun(iso: string | null): string {
  if (!iso) {
    return '-';
  }
  const stamp = Date.parse(iso);
  return Number.isNaN(stamp) ? iso : when(stamp / 1000);
}

export class ScheduleList {
  constructor(
    private launch: LaunchSection,
    private trans: TranslationBundle
  ) {
    this.list = el('div', { class: 'labloom-schedules' });
    // What the last schedule action did, kept until the next one (a poll clears the panel's
    // error): "Run now" under a long list started a run at its top, out of sight, and said
    // nothing.
    this.note = el('div', { class: 'labloom-schedule-note', role: 'status' });
    this.nodes = [el('h3', {}, trans.__('Schedules')), this.note, this.list];
  }

  /** The section's elements, in the panel's order: its heading, the note, the list. */
  readonly nodes: HTMLElement[];

  async refresh(): Promise<void> {
    let answer: IScheduleList;
    try {
      answer = await requestAPI<IScheduleList>('schedules');
    } catch (error: any) {
      this.list.replaceChildren(
        el('p', { class: 'labloom-empty' }, `[labloom] ${error.message || error}`)
      );
      return;
    }
    if (!answer.schedules.length) {
      this.list.replaceChildren(
        el(
          'p',
          { class: 'labloom-empty' },
          this.trans.__(
            'No schedules: add one with `labloom schedule add file.py:flow --every 1h`, then run `labloom serve`.'
          )
        )
      );
      return;
    }
    const rows = answer.schedules.map(s => this.row(s));
    // The panel read "next 10:50" while nothing would run it: schedules fire only from a
    // `labloom serve` (`labloom schedule list` says so too).
    if (answer.scheduler?.running === false && answer.schedules.some(s => !s.paused)) {
      rows.unshift(
        el(
          'p',
          { class: 'labloom-schedules-idle', role: 'note' },
          this.trans.__(
            'No scheduler is running: these schedules run only while `labloom serve` runs (start it in a terminal).'
          )
        )
      );
    }
    this.list.replaceChildren(...rows);
  }

  private row(s: ISchedule): HTMLElement {
    const row = el('div', {
      class: 'labloom-schedule',
      'data-schedule': s.name,
      'data-paused': String(s.paused)
    });
    const trans = this.trans;
    const last = s.last_run
      ? trans.__('last %1', trans.__(s.last_run.status))
      : trans.__('never ran');
    row.append(
      el('span', { class: 'labloom-schedule-name' }, s.name),
      el('span', { class: 'labloom-schedule-when' }, s.when),
      el(
        'span',
        { class: 'labloom-schedule-next', title: s.next_run || '' },
        // In the runs' own words (their start times are local): it read the store's ISO
        // stamp in UTC, "2026-12-06T10:50:32+00:00", beside runs started "9:50:47 AM".
        s.paused ? trans.__('paused') : trans.__('next %1', nextRun(s.next_run))
      ),
      el('span', { class: 'labloom-schedule-last' }, last)
    );
    if (s.problem) {
      // This host cannot compute its times: said as `labloom schedule list` says it.
      row.append(el('span', { class: 'labloom-schedule-problem' }, s.problem));
    }
    const toggle = el(
      'button',
      { class: 'labloom-schedule-toggle jp-mod-styled', type: 'button' },
      s.paused ? trans.__('Resume') : trans.__('Pause')
    );
    toggle.addEventListener('click', () =>
      this.act(s.name, s.paused ? 'resume' : 'pause')
    );
    const now = el(
      'button',
      { class: 'labloom-schedule-run jp-mod-styled', type: 'button' },
      trans.__('Run now')
    );
    now.addEventListener('click', () => this.act(s.name, 'run'));
    const withParams = el(
      'button',
      { class: 'labloom-schedule-launch jp-mod-styled', type: 'button' },
      trans.__('Run with…')
    );
    withParams.addEventListener('click', () => void this.launch.open({ schedule: s.name }));
    row.append(toggle, now, withParams);
    return row;
  }

  private async act(name: string, action: string): Promise<void> {
    const note = this.note;
    note.textContent = '';
    note.removeAttribute('data-error');
    try {
      const answer = await requestAPI<{ pid?: number }>(
        `schedules/${encodeURIComponent(name)}/${action}`,
        { method: 'POST' }
      );
      if (action === 'run') {
        note.textContent = this.trans.__(
          'Started %1 now (pid %2): its run shows at the top of the list.',
          name,
          answer.pid ?? '?'
        );
      }
    } catch (error: any) {
      note.textContent = this.trans.__(
        '[labloom] %1 %2 failed: %3',
        action,
        name,
        error.message || error
      );
      note.setAttribute('data-error', 'true');
    }
    await this.refresh();
  }

  private list: HTMLElement;
  private note: HTMLElement;
}
