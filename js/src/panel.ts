// The Flows side panel: every run in the store, newest first, and the schedules. Pushed deltas
// (LiveRuns) update its rows in place (a row keeps its element, so focus and scroll stay); a
// run it does not list yet, or missed events, make it read the list again. A Poll stays as a
// safety net (every second only until the server is seen pushing), standing by while hidden.
import { Signal } from '@lumino/signaling';
import { nullTranslator, TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import {
  el,
  IRunList,
  originLabel,
  IRunSummary,
  ISchedule,
  IScheduleList,
  requestAPI,
  seconds,
  when
} from './api';
import { escapeBidi } from './bidi';
import { confirmAndDelete, deletedLabel } from './deleting';
import { IRunDelta, IRunsEvent, LiveRuns, SafetyNet } from './live';
import { LaunchSection } from './launch';
import { DEFAULT_SETTINGS, IPanelSettings } from './settings';

const STATES = ['', 'Running', 'Completed', 'Failed', 'Cancelled', 'Crashed'];
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

function countsLabel(counts: Record<string, number>, trans: TranslationBundle): string {
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
/** A schedule's next run as the panel says times; its ISO stamp when the browser cannot read it. */
function nextRun(iso: string | null): string {
  if (!iso) {
    return '-';
  }
  const stamp = Date.parse(iso);
  return Number.isNaN(stamp) ? iso : when(stamp / 1000);
}

const SAFETY_NET = 15000; // ms between list reads once the server pushes
const MAX_PAGE = 500; // the API's largest page

export class FlowsPanel extends Widget {
  constructor(
    private open: (runId: string) => void,
    private live: LiveRuns,
    private trans: TranslationBundle = nullTranslator.load('labloom'),
    private compare: (runIds: string[], flow: string) => void = () => undefined
  ) {
    super();
    this.id = 'labloom-flows';
    this.addClass('labloom-FlowsPanel');
    this.title.caption = trans.__('Flows (labloom)');

    const head = el('div', { class: 'labloom-FlowsPanel-head' });
    head.append(el('h2', {}, trans.__('Flows')));
    this.filter = el('input', {
      class: 'labloom-filter jp-mod-styled',
      type: 'search',
      placeholder: trans.__('Filter by flow, state, origin, host'),
      'aria-label': trans.__('Filter runs')
    }) as HTMLInputElement;
    this.filter.addEventListener('input', () => this.drawRuns());
    this.stateChoice = el('select', {
      class: 'labloom-state-filter jp-mod-styled',
      'aria-label': trans.__('Run state')
    }) as HTMLSelectElement;
    for (const state of STATES) {
      this.stateChoice.append(
        el('option', { value: state }, state ? trans.__(state) : trans.__('all states'))
      );
    }
    this.stateChoice.addEventListener('change', () => void this.poll());
    // Runs of one flow ticked in the list open side by side in one Experiments table.
    this.compareButton = el(
      'button',
      { class: 'labloom-compare jp-mod-styled', type: 'button' },
      'Compare experiments'
    ) as HTMLButtonElement;
    this.compareButton.disabled = true;
    this.compareButton.addEventListener('click', () => {
      if (this.picked.size && this.pickedFlow !== null) {
        this.compare([...this.picked], this.pickedFlow);
      }
    });
    // Ticked runs deleted, after a confirm dialog, by labloom delete's rules (the server's).
    this.deleteButton = el(
      'button',
      { class: 'labloom-delete jp-mod-styled jp-mod-warn', type: 'button' },
      trans.__('Delete')
    ) as HTMLButtonElement;
    this.deleteButton.disabled = true;
    this.deleteButton.addEventListener('click', () => void this.deletePicked());
    head.append(this.filter, this.stateChoice, this.compareButton, this.deleteButton);

    this.runs = el('div', { class: 'labloom-runs', role: 'list' });
    // The run a command (cancel the selected run) acts on: the row last focused or clicked.
    this.runs.addEventListener('focusin', event => {
      const row = (event.target as HTMLElement).closest?.('.labloom-run');
      this.selectedRun = row?.getAttribute('data-run-id') || this.selectedRun;
    });
    this.launch = new LaunchSection(id => {
      this.selectedRun = id;
      void this.poll();
    }, trans);
    this.schedules = el('div', { class: 'labloom-schedules' });
    // What the last schedule action did, kept until the next one (a poll clears this.error):
    // "Run now" under a long list started a run at its top, out of sight, and said nothing.
    this.scheduleNote = el('div', { class: 'labloom-schedule-note', role: 'status' });
    this.error = el('div', { class: 'labloom-FlowsPanel-error' });
    // What the last Delete kept and why: it stays until the next Delete (a poll clears errors).
    this.deleteNote = el('div', { class: 'labloom-FlowsPanel-error labloom-delete-note' });
    this.node.append(
      head,
      this.launch.node,
      this.error,
      this.deleteNote,
      this.runs,
      el('h3', {}, trans.__('Schedules')),
      this.scheduleNote,
      this.schedules
    );
    this.ticker = new SafetyNet(live, {
      factory: () => this.poll(),
      pushed: SAFETY_NET,
      polled: () => this.settings.refreshMs,
      standby: () => !this.isVisible,
      name: 'labloom:panel'
    });
    live.changed.connect(this.onEvent, this);
    live.missed.connect(() => this.readAgain(), this);
  }

  /** Settings > labloom (schema/plugin.json); the filters apply when the settings change. */
  configure(settings: IPanelSettings): void {
    this.settings = settings;
    this.limit = settings.runsShown;
    this.stateChoice.value = settings.defaultState;
    this.filter.value = settings.defaultFilter;
    this.ticker.pace();
    if (!this.list && !this.isVisible) {
      // The first page is read and drawn once while hidden (Lab is restored by now): opening
      // the panel then shows rows at once, kept current by pushed events, and reads again.
      void this.poll();
    }
    this.readAgain();
  }

  /** The run the "cancel the selected run" command acts on. */
  selectedRun: string | null = null;

  /** Runs this panel deleted: their open tabs say so. */
  readonly runsDeleted = new Signal<this, string[]>(this);

  protected onAfterShow(): void {
    this.readAgain();
  }

  dispose(): void {
    this.ticker.dispose();
    Signal.disconnectReceiver(this);
    super.dispose();
  }

  /** Once the server pushes, the list is read only as a safety net. */
  /** Read the list now (the poll's next tick, at once), if shown. */
  private readAgain(): void {
    if (this.isVisible) {
      void this.ticker.refresh();
    }
  }

  /** A pushed event: each listed run's row is patched; a run not listed means a read. */
  private onEvent(_: LiveRuns, event: IRunsEvent): void {
    this.ticker.pace();
    if (!this.list) {
      return;
    }
    if (event.deleted?.length) {
      this.dropRuns(new Set(event.deleted)); // deleted from another window of this server
    }
    const state = this.stateChoice.value;
    const listed = this.list.runs;
    const oldest = listed.length ? listed[listed.length - 1].created || 0 : 0;
    let unknown = false;
    for (const delta of event.runs) {
      // Whether the run belongs on this page: its state filter, not older than the page.
      const belongs =
        (!state || delta.state === state) && (!this.list.next || (delta.created || 0) >= oldest);
      const at = listed.findIndex(run => run.id === delta.id);
      if (at < 0 && this.patchOlder(delta, state)) {
        continue;
      }
      if (at < 0 || !belongs) {
        unknown = unknown || belongs || at >= 0; // a new run, or one leaving the page
        continue;
      }
      const { from, to, nodes, lines, ...summary } = delta;
      const run = (listed[at] = { ...listed[at], ...summary });
      const row = this.rows.get(run.id);
      if (row) {
        this.fill(row, run);
      }
    }
    this.list.running = event.running;
    if (unknown) {
      this.readAgain();
    }
  }

  /** A pushed delta of a run older than the polled page (read on request): its row follows
   * the run as the page's rows do; one its state filter no longer takes leaves. Whether the
   * run is one of them. */
  private patchOlder(delta: IRunDelta, state: string): boolean {
    const at = this.older.findIndex(run => run.id === delta.id);
    if (at < 0) {
      return false;
    }
    if (state && delta.state !== state) {
      this.older.splice(at, 1);
      this.drawRuns();
      return true;
    }
    const { from, to, nodes, lines, ...summary } = delta;
    const run = (this.older[at] = { ...this.older[at], ...summary });
    const row = this.rows.get(run.id);
    if (row) {
      this.fill(row, run);
    }
    return true;
  }

  async poll(): Promise<void> {
    const state = this.stateChoice.value;
    const query = `runs?limit=${this.limit}` + (state ? `&state=${state}` : '');
    if (state !== this.olderState) {
      this.older = [];
      this.olderNext = true;
      this.olderState = state;
    }
    try {
      this.list = await requestAPI<IRunList>(query);
      await this.readOlderAgain(state);
      this.error.textContent = '';
    } catch (error: any) {
      this.error.textContent = this.trans.__(
        '[labloom] cannot read runs: %1',
        error.message || error
      );
      return;
    }
    this.drawRuns();
    this.live.listed(this.list);
    this.ticker.pace();
    // Schedules change rarely: every fifth poll, and after each action.
    if (this.live.pushing || this.ticks++ % 5 === 0) {
      await this.pollSchedules();
    }
  }

  private drawRuns(): void {
    if (!this.list) {
      return;
    }
    const words = this.filter.value.trim().toLowerCase();
    const read = this.older.length ? this.list.runs.concat(this.older) : this.list.runs;
    const shown = read.filter(
      run =>
        !words ||
        [run.flow, run.state, run.origin || '', run.host || '', run.id].some(v =>
          v.toLowerCase().includes(words)
        )
    );
    const older = !!this.list.next && (this.limit < MAX_PAGE || this.olderNext);
    this.more.textContent = this.trans.__('Show %1 older runs', this.settings.runsShown);
    if (!shown.length) {
      // The filter sees the runs read so far: older ones may match, one click away.
      const empty = !this.list.runs.length
        ? this.trans.__(
            'No runs yet: try %%flow in a notebook, or `labloom run file.py:flow` in a terminal.'
          )
        : older
          ? this.trans.__('No run among the %1 newest matches the filter.', read.length)
          : this.trans.__('No run matches the filter.');
      this.rows.clear();
      this.runs.replaceChildren(el('p', { class: 'labloom-empty' }, empty));
      if (older) {
        this.runs.append(this.more);
      }
      return;
    }
    // Rows are kept by run id and patched: only new rows are made, and nodes move only when
    // the order changed, so a focused row keeps focus and the list keeps its scroll.
    const rows = shown.map(run => {
      let row = this.rows.get(run.id);
      if (!row) {
        row = this.row(run);
        this.rows.set(run.id, row);
      }
      this.fill(row, run);
      return row;
    });
    const keep = new Set(rows);
    for (const [id, row] of this.rows) {
      if (!keep.has(row)) {
        this.rows.delete(id);
      }
    }
    if (older) {
      rows.push(this.more);
    }
    for (const child of Array.from(this.runs.children)) {
      if (!keep.has(child as HTMLElement) && child !== this.more) {
        child.remove();
      }
    }
    if (!older) {
      this.more.remove();
    }
    rows.forEach((row, i) => {
      if (this.runs.children[i] !== row) {
        this.runs.insertBefore(row, this.runs.children[i] || null);
      }
    });
  }

  private row(run: IRunSummary): HTMLElement {
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
    pick.checked = this.picked.has(run.id);
    pick.disabled = this.pickedFlow !== null && this.pickedFlow !== run.flow;
    pick.addEventListener('click', event => event.stopPropagation());
    pick.addEventListener('change', () => this.pick(run, pick.checked));
    row.append(
      pick,
      el('span', { class: 'labloom-run-flow' }),
      el('span', { class: 'labloom-state' }),
      el('span', { class: 'labloom-run-origin' }),
      el('span', { class: 'labloom-run-start' }),
      el('span', { class: 'labloom-run-duration' }),
      el('span', { class: 'labloom-run-done' })
    );
    row.addEventListener('click', () => this.open(run.id));
    row.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        this.open(run.id);
      }
    });
    return row;
  }

  /** Set a row's texts from its run: only what differs is written. */
  private fill(row: HTMLElement, run: IRunSummary): void {
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
    attr(row, 'title', escapeBidi(run.message) || this.trans.__('run %1', run.id));
    const [pick, flow, state, origin, start, duration, done] = Array.from(row.children);
    (pick as HTMLInputElement).checked = this.picked.has(run.id);
    (pick as HTMLInputElement).disabled =
      this.pickedFlow !== null && this.pickedFlow !== run.flow;
    set(flow, escapeBidi(run.flow));
    set(state, run.state);
    attr(state, 'data-state', run.state);
    set(origin, originLabel(run.origin));
    set(start, when(run.started));
    set(duration, seconds(run.duration));
    set(done, countsLabel(run.counts || {}, this.trans));
    attr(done, 'title', this.trans.__('%1 of %2 task runs finished', run.done, run.total));
  }

  private pick(run: IRunSummary, on: boolean): void {
    if (on) {
      this.picked.add(run.id);
    } else {
      this.picked.delete(run.id);
    }
    this.pickedFlow = this.picked.size ? run.flow : null;
    this.showPicked();
  }

  private showPicked(): void {
    const n = this.picked.size;
    this.compareButton.disabled = this.deleteButton.disabled = !n;
    this.compareButton.textContent = n ? `Compare experiments (${n})` : 'Compare experiments';
    this.deleteButton.textContent = n
      ? this.trans.__('Delete (%1)', n)
      : this.trans.__('Delete');
    this.drawRuns();
  }

  private async deletePicked(): Promise<void> {
    if (!this.picked.size || this.pickedFlow === null) {
      return;
    }
    let result;
    this.deleteNote.textContent = '';
    try {
      result = await confirmAndDelete([...this.picked], this.pickedFlow, this.trans);
    } catch (error: any) {
      this.deleteNote.textContent = this.trans.__(
        '[labloom] delete failed: %1',
        error.message || error
      );
      return;
    }
    if (!result) {
      return;
    }
    this.deleteNote.textContent = result.kept.length ? deletedLabel(result, this.trans) : '';
    this.dropRuns(new Set(result.deleted));
    this.runsDeleted.emit(result.deleted);
    void this.poll();
  }

  /** Runs gone from the store: their rows and ticks go. */
  private dropRuns(gone: Set<string>): void {
    gone.forEach(id => this.picked.delete(id));
    this.pickedFlow = this.picked.size ? this.pickedFlow : null;
    if (this.selectedRun && gone.has(this.selectedRun)) {
      this.selectedRun = null;
    }
    if (this.list) {
      this.list.runs = this.list.runs.filter(run => !gone.has(run.id));
    }
    this.older = this.older.filter(run => !gone.has(run.id));
    this.showPicked();
  }

  async pollSchedules(): Promise<void> {
    let answer: IScheduleList;
    try {
      answer = await requestAPI<IScheduleList>('schedules');
    } catch (error: any) {
      this.schedules.replaceChildren(
        el('p', { class: 'labloom-empty' }, `[labloom] ${error.message || error}`)
      );
      return;
    }
    if (!answer.schedules.length) {
      this.schedules.replaceChildren(
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
    const rows = answer.schedules.map(s => this.scheduleRow(s));
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
    this.schedules.replaceChildren(...rows);
  }

  private scheduleRow(s: ISchedule): HTMLElement {
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

  private moreButton(): HTMLElement {
    const more = el(
      'button',
      { class: 'labloom-more jp-mod-styled', type: 'button' },
      ''
    );
    more.addEventListener('click', () => {
      if (this.limit < MAX_PAGE) {
        this.limit = Math.min(MAX_PAGE, this.limit + this.settings.runsShown);
        void this.poll();
      } else {
        void this.readOlder();
      }
    });
    return more;
  }

  /** Past the newest MAX_PAGE runs (the page polled), older ones a page per click, by the
   * API's `before`: they are kept, not polled (they have ended, most of them). */
  private async readOlder(): Promise<void> {
    const read = this.older.length ? this.older : this.list?.runs || [];
    const oldest = read[read.length - 1];
    if (!oldest) {
      return;
    }
    const state = this.stateChoice.value;
    try {
      const page = await requestAPI<IRunList>(
        `runs?limit=${this.settings.runsShown}&before=${oldest.id}` + (state ? `&state=${state}` : '')
      );
      if (state === this.olderState) {
        this.older = this.older.concat(page.runs);
        this.olderNext = page.next !== null;
      }
    } catch (error: any) {
      this.error.textContent = this.trans.__('[labloom] cannot read runs: %1', error.message || error);
      return;
    }
    this.drawRuns();
  }

  /** The older runs read so far, read again with each read of the page, from the page's
   * oldest run down to the oldest of them: new runs push the page's oldest ones out of it
   * (listed with these, none falls between), and what pushes do not say reaches them too (a
   * run deleted by another process, by `labloom delete --older-than` most often). */
  private async readOlderAgain(state: string): Promise<void> {
    const page = this.list!.runs;
    const last = page[page.length - 1];
    const oldest = this.older[this.older.length - 1];
    if (!oldest || !last) {
      return;
    }
    const fresh: IRunSummary[] = [];
    for (let before: string | null = last.id; before !== null; ) {
      const between: IRunList = await requestAPI<IRunList>(
        `runs?limit=${MAX_PAGE}&before=${before}` + (state ? `&state=${state}` : '')
      );
      const reached = between.runs.findIndex(
        run => run.id === oldest.id || (run.created || 0) < (oldest.created || 0)
      );
      const through = reached >= 0 && between.runs[reached].id === oldest.id ? reached + 1 : reached;
      fresh.push(...(reached >= 0 ? between.runs.slice(0, through) : between.runs));
      before = reached >= 0 ? null : between.next;
    }
    if (state === this.olderState && this.older[this.older.length - 1] === oldest) {
      const listed = new Set(page.map(run => run.id));
      this.older = fresh.filter(run => !listed.has(run.id));
    }
  }

  private async act(name: string, action: string): Promise<void> {
    const note = this.scheduleNote;
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
    await this.pollSchedules();
  }

  private filter: HTMLInputElement;
  private compareButton: HTMLButtonElement;
  private deleteButton: HTMLButtonElement;
  private picked = new Set<string>();
  private pickedFlow: string | null = null;
  private stateChoice: HTMLSelectElement;
  private runs: HTMLElement;
  private schedules: HTMLElement;
  private scheduleNote: HTMLElement;
  private error: HTMLElement;
  private deleteNote: HTMLElement;
  private ticker: SafetyNet;
  private rows = new Map<string, HTMLElement>();
  private more = this.moreButton();
  private list: IRunList | null = null;
  private ticks = 0;
  private limit = DEFAULT_SETTINGS.runsShown;
  // Runs older than the polled page (its MAX_PAGE newest), read on request and kept.
  private older: IRunSummary[] = [];
  private olderNext = true; // whether runs older than those are left
  private olderState = ''; // the state filter they were read with
  private settings = DEFAULT_SETTINGS;
  readonly launch: LaunchSection;
}
