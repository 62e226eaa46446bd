// The Flows side panel: every run in the store, newest first, and the schedules. Polls once a
// second while it is visible; a hidden panel (or a hidden browser tab) sends no requests.
import { nullTranslator, TranslationBundle } from '@jupyterlab/translation';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import {
  el,
  IRunList,
  originLabel,
  IRunSummary,
  ISchedule,
  Poller,
  requestAPI,
  seconds,
  when
} from './api';
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
const MAX_PAGE = 500; // the API's largest page

export class FlowsPanel extends Widget {
  constructor(
    private open: (runId: string) => void,
    private trans: TranslationBundle = nullTranslator.load('labloom')
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
    head.append(this.filter, this.stateChoice);

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
    this.error = el('div', { class: 'labloom-FlowsPanel-error' });
    this.node.append(
      head,
      this.launch.node,
      this.error,
      this.runs,
      el('h3', {}, trans.__('Schedules')),
      this.schedules
    );
    this.poller = new Poller(
      () => this.poll(),
      () => this.settings.refreshMs,
      () => this.isVisible
    );
  }

  /** How many runs are running, after each poll (the status bar shows it). */
  get listed(): ISignal<this, number> {
    return this._listed;
  }

  /** Settings > labloom (schema/plugin.json); the filters apply when the settings change. */
  configure(settings: IPanelSettings): void {
    this.settings = settings;
    this.limit = settings.runsShown;
    this.stateChoice.value = settings.defaultState;
    this.filter.value = settings.defaultFilter;
    if (this.isVisible) {
      void this.poll();
    }
  }

  /** The run the "cancel the selected run" command acts on. */
  selectedRun: string | null = null;

  protected onAfterShow(): void {
    this.poller.wake();
  }

  protected onAfterHide(): void {
    this.poller.stop();
  }

  dispose(): void {
    this.poller.dispose();
    super.dispose();
  }

  async poll(): Promise<void> {
    const state = this.stateChoice.value;
    const query = `runs?limit=${this.limit}` + (state ? `&state=${state}` : '');
    try {
      this.list = await requestAPI<IRunList>(query);
      this.error.textContent = '';
    } catch (error: any) {
      this.error.textContent = this.trans.__(
        '[labloom] cannot read runs: %1',
        error.message || error
      );
      return;
    }
    this.drawRuns();
    this._listed.emit(this.list.running);
    // Schedules change rarely: every fifth poll, and after each action.
    if (this.ticks++ % 5 === 0) {
      await this.pollSchedules();
    }
  }

  private drawRuns(): void {
    if (!this.list) {
      return;
    }
    const words = this.filter.value.trim().toLowerCase();
    const shown = this.list.runs.filter(
      run =>
        !words ||
        [run.flow, run.state, run.origin || '', run.host || '', run.id].some(v =>
          v.toLowerCase().includes(words)
        )
    );
    if (!shown.length) {
      const empty = this.list.runs.length
        ? this.trans.__('No run matches the filter.')
        : this.trans.__(
            'No runs yet: try %%flow in a notebook, or `labloom run file.py:flow` in a terminal.'
          );
      this.runs.replaceChildren(el('p', { class: 'labloom-empty' }, empty));
      return;
    }
    const rows = shown.map(run => this.row(run));
    if (this.list.next && this.limit < MAX_PAGE) {
      const more = el(
        'button',
        { class: 'labloom-more jp-mod-styled', type: 'button' },
        this.trans.__('Show %1 older runs', this.settings.runsShown)
      );
      more.addEventListener('click', () => {
        this.limit = Math.min(MAX_PAGE, this.limit + this.settings.runsShown);
        void this.poll();
      });
      rows.push(more);
    }
    this.runs.replaceChildren(...rows);
  }

  private row(run: IRunSummary): HTMLElement {
    const row = el('div', {
      class: 'labloom-run',
      role: 'listitem',
      tabindex: '0',
      'data-run-id': run.id,
      'data-state': run.state,
      title: run.message || this.trans.__('run %1', run.id)
    });
    row.append(
      el('span', { class: 'labloom-run-flow' }, run.flow),
      el('span', { class: 'labloom-state', 'data-state': run.state }, run.state),
      el('span', { class: 'labloom-run-origin' }, originLabel(run.origin)),
      el('span', { class: 'labloom-run-start' }, when(run.started)),
      el('span', { class: 'labloom-run-duration' }, seconds(run.duration)),
      el(
        'span',
        {
          class: 'labloom-run-done',
          title: this.trans.__('%1 of %2 task runs finished', run.done, run.total)
        },
        countsLabel(run.counts || {}, this.trans)
      )
    );
    row.addEventListener('click', () => this.open(run.id));
    row.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        this.open(run.id);
      }
    });
    return row;
  }

  async pollSchedules(): Promise<void> {
    let answer: { schedules: ISchedule[] };
    try {
      answer = await requestAPI<{ schedules: ISchedule[] }>('schedules');
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
    this.schedules.replaceChildren(...answer.schedules.map(s => this.scheduleRow(s)));
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
        { class: 'labloom-schedule-next' },
        s.paused ? trans.__('paused') : trans.__('next %1', s.next_run || '-')
      ),
      el('span', { class: 'labloom-schedule-last' }, last)
    );
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
    try {
      await requestAPI(`schedules/${encodeURIComponent(name)}/${action}`, { method: 'POST' });
    } catch (error: any) {
      this.error.textContent = this.trans.__(
        '[labloom] %1 %2 failed: %3',
        action,
        name,
        error.message || error
      );
    }
    await this.pollSchedules();
  }

  private filter: HTMLInputElement;
  private stateChoice: HTMLSelectElement;
  private runs: HTMLElement;
  private schedules: HTMLElement;
  private error: HTMLElement;
  private poller: Poller;
  private list: IRunList | null = null;
  private ticks = 0;
  private limit = DEFAULT_SETTINGS.runsShown;
  private settings = DEFAULT_SETTINGS;
  readonly launch: LaunchSection;
  private _listed = new Signal<this, number>(this);
}
