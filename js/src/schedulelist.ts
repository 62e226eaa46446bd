// The Flows panel's Schedules: each schedule's times and last run, Pause/Resume, Run now and
// Run with… (the launch form), and whether a scheduler runs them at all.
import { TranslationBundle } from '@jupyterlab/translation';

import { alertLines, refusedLines } from './alertnote';
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
    this.idle = el(
      'p',
      { class: 'labloom-schedules-idle', role: 'note' },
      trans.__(
        'No scheduler is running: these schedules run only while `labloom serve` runs (start it in a terminal).'
      )
    );
  }

  /** The section's elements, in the panel's order: its heading, the note, the list. */
  readonly nodes: HTMLElement[];

  async refresh(): Promise<void> {
    // Busy while read (assistive technology waits for the list; a test knows when it is drawn).
    this.list.setAttribute('aria-busy', 'true');
    this.reading++;
    try {
      this.show(await this.read());
    } finally {
      if (--this.reading === 0) {
        this.list.removeAttribute('aria-busy');
      }
    }
  }

  /** What the list is to show as the server now says: a message, or the rows. */
  private async read(): Promise<HTMLElement[]> {
    let answer: IScheduleList;
    try {
      answer = await requestAPI<IScheduleList>('schedules');
    } catch (error: any) {
      return [this.message(`[labloom] ${error.message || error}`)];
    }
    if (!answer.schedules.length) {
      return [
        this.message(
          this.trans.__(
            'No schedules: add one with `labloom schedule add file.py:flow --every 1h`, then run `labloom serve`.'
          )
        )
      ];
    }
    const shown: HTMLElement[] = [];
    // The panel read "next 10:50" while nothing would run it: schedules fire only from a
    // `labloom serve` (`labloom schedule list` says so too).
    if (answer.scheduler?.running === false && answer.schedules.some(s => !s.paused)) {
      shown.push(this.idle);
    }
    const names = new Set<string>();
    for (const s of answer.schedules) {
      names.add(s.name);
      shown.push(this.rowOf(s));
    }
    for (const name of Array.from(this.rows.keys())) {
      if (!names.has(name)) {
        this.rows.delete(name);
      }
    }
    return shown;
  }

  /**
   * The list made to hold `shown`, in order, moving or removing only what differs: a list
   * redrawn whole on each read (every fifth poll) took the buttons away under a click that
   * landed as it was redrawn (pressed on one button, released on its twin: no click at all).
   */
  private show(shown: HTMLElement[]): void {
    const keep = new Set(shown);
    for (const child of Array.from(this.list.children)) {
      if (!keep.has(child as HTMLElement)) {
        child.remove();
      }
    }
    shown.forEach((node, i) => {
      if (this.list.children[i] !== node) {
        this.list.insertBefore(node, this.list.children[i] || null);
      }
    });
  }

  /** The one paragraph that says why there is no row (none, or the list unreadable). */
  private message(text: string): HTMLElement {
    if (this.said.textContent !== text) {
      this.said.textContent = text;
    }
    return this.said;
  }

  /** A schedule's row: kept as it is while the schedule reads the same, else filled again
   * in place (its buttons stay the same elements). */
  private rowOf(s: ISchedule): HTMLElement {
    const seen = JSON.stringify(s);
    let drawn = this.rows.get(s.name);
    if (!drawn) {
      drawn = { row: this.row(s.name), seen: '', schedule: s };
      this.rows.set(s.name, drawn);
    }
    drawn.schedule = s;
    if (drawn.seen !== seen) {
      drawn.seen = seen;
      this.fill(drawn.row, s);
    }
    return drawn.row;
  }

  /** A schedule's row as made once: its spans, filled by `fill`, and its buttons, which act
   * on the schedule as last read. */
  private row(name: string): HTMLElement {
    const row = el('div', { class: 'labloom-schedule', 'data-schedule': name });
    const trans = this.trans;
    row.append(
      el('span', { class: 'labloom-schedule-name' }, name),
      el('span', { class: 'labloom-schedule-when' }),
      el('span', { class: 'labloom-schedule-next' }),
      el('span', { class: 'labloom-schedule-last' })
    );
    const paused = () => !!this.rows.get(name)?.schedule.paused;
    const toggle = el(
      'button',
      { class: 'labloom-schedule-toggle jp-mod-styled', type: 'button' },
      ''
    );
    toggle.addEventListener('click', () => this.act(name, paused() ? 'resume' : 'pause'));
    const now = el(
      'button',
      { class: 'labloom-schedule-run jp-mod-styled', type: 'button' },
      trans.__('Run now')
    );
    now.addEventListener('click', () => this.act(name, 'run'));
    const withParams = el(
      'button',
      { class: 'labloom-schedule-launch jp-mod-styled', type: 'button' },
      trans.__('Run with…')
    );
    withParams.addEventListener('click', () => void this.launch.open({ schedule: name }));
    row.append(toggle, now, withParams);
    return row;
  }

  /** A row made to say what `s` says. */
  private fill(row: HTMLElement, s: ISchedule): void {
    const trans = this.trans;
    const part = (name: string) => row.querySelector(`.labloom-schedule-${name}`)!;
    row.setAttribute('data-paused', String(s.paused));
    part('when').textContent = s.when;
    const next = part('next');
    next.setAttribute('title', s.next_run || '');
    // In the runs' own words (their start times are local): it read the store's ISO
    // stamp in UTC, "2026-12-06T10:50:32+00:00", beside runs started "9:50:47 AM".
    next.textContent = s.paused ? trans.__('paused') : trans.__('next %1', nextRun(s.next_run));
    part('last').textContent = s.last_run
      ? trans.__('last %1', trans.__(s.last_run.status))
      : trans.__('never ran');
    // This host cannot compute its times: said as `labloom schedule list` says it.
    row.querySelector('.labloom-schedule-problem')?.remove();
    if (s.problem) {
      part('last').after(el('span', { class: 'labloom-schedule-problem' }, s.problem));
    }
    // Alerts given up or being retried, and a live `labloom serve` that will not run it:
    // `labloom schedule list` said so, the panel did not (the row read as if it would run).
    // Redrawn only when the schedule reads differently (rowOf), so a title hovered stays.
    row.querySelectorAll('.labloom-schedule-alert').forEach(line => line.remove());
    const { lost, retrying } = alertLines(s, trans, nextRun);
    for (const [line, kind] of [
      ...refusedLines(s, trans, nextRun).map(refused => [refused, 'refused'] as const),
      [lost, 'lost'] as const,
      [retrying, 'retrying'] as const
    ]) {
      if (line) {
        const note = el('div', { class: 'labloom-schedule-alert', 'data-alert': kind });
        note.append(el('span', { class: 'labloom-schedule-alert-why' }, line.text));
        if (line.fix) {
          note.append(el('span', { class: 'labloom-schedule-alert-fix' }, line.fix));
        }
        note.setAttribute('title', line.title);
        row.append(note);
      }
    }
    part('toggle').textContent = s.paused ? trans.__('Resume') : trans.__('Pause');
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
  // Each schedule's row by name, with the schedule it was last filled from (as JSON).
  private rows = new Map<string, { row: HTMLElement; seen: string; schedule: ISchedule }>();
  private said = el('p', { class: 'labloom-empty' });
  private reading = 0; // reads under way (two may overlap: a poll's and an action's)
  private idle: HTMLElement;
}
