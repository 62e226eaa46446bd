// The Flows side panel: every run in the store, newest first, and the schedules. Pushed deltas
// (LiveRuns) update its rows in place (a row keeps its element, so focus and scroll stay); a
// run it does not list yet, or missed events, make it read the list again. A Poll stays as a
// safety net (every second only until the server is seen pushing), standing by while hidden.
// Its rows are runrow.ts's, the runs past its page olderruns.ts's, its schedules
// schedulelist.ts's.
import { Signal } from '@lumino/signaling';
import { nullTranslator, TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { el, IRunList, IRunSummary, requestAPI } from './api';
import { deletedBefore, filesNotDeleted } from './deletecut';
import { confirmAndDelete, deletedLabel } from './deleting';
import { IRunDelta, IRunsEvent, LiveRuns, SafetyNet } from './live';
import { LaunchSection } from './launch';
import { MAX_PAGE, OlderRuns } from './olderruns';
import { fillRunRow, IRowHost, makeRunRow } from './runrow';
import { ScheduleList } from './schedulelist';
import { DEFAULT_SETTINGS, IPanelSettings } from './settings';

const STATES = ['', 'Running', 'Completed', 'Failed', 'Cancelled', 'Crashed'];
const SAFETY_NET = 15000; // ms between list reads once the server pushes

export class FlowsPanel extends Widget implements IRowHost {
  constructor(
    readonly open: (runId: string) => void,
    private live: LiveRuns,
    readonly trans: TranslationBundle = nullTranslator.load('labloom'),
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
    this.schedules = new ScheduleList(this.launch, trans);
    this.error = el('div', { class: 'labloom-FlowsPanel-error' });
    // What the last Delete kept and why: it stays until the next Delete (a poll clears errors).
    this.deleteNote = el('div', { class: 'labloom-FlowsPanel-error labloom-delete-note' });
    this.node.append(
      head,
      this.launch.node,
      this.error,
      this.deleteNote,
      this.runs,
      ...this.schedules.nodes
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
      this.refill((listed[at] = { ...listed[at], ...summary }));
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
    const older = this.older.runs;
    const at = older.findIndex(run => run.id === delta.id);
    if (at < 0) {
      return false;
    }
    if (state && delta.state !== state) {
      older.splice(at, 1);
      this.drawRuns();
      return true;
    }
    const { from, to, nodes, lines, ...summary } = delta;
    this.refill((older[at] = { ...older[at], ...summary }));
    return true;
  }

  /** A run's row, if drawn, made to say what the run now says. */
  private refill(run: IRunSummary): void {
    const row = this.rows.get(run.id);
    if (row) {
      fillRunRow(row, run, this);
    }
  }

  async poll(): Promise<void> {
    const state = this.stateChoice.value;
    const query = `runs?limit=${this.limit}` + (state ? `&state=${state}` : '');
    this.older.readingFor(state);
    try {
      this.list = await requestAPI<IRunList>(query);
      await this.older.readAgain(this.list.runs, state);
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
      await this.schedules.refresh();
    }
  }

  /** The schedules read again now. */
  pollSchedules(): Promise<void> {
    return this.schedules.refresh();
  }

  private drawRuns(): void {
    if (!this.list) {
      return;
    }
    const words = this.filter.value.trim().toLowerCase();
    const older = this.older.runs;
    const read = older.length ? this.list.runs.concat(older) : this.list.runs;
    const shown = read.filter(
      run =>
        !words ||
        [run.flow, run.state, run.origin || '', run.host || '', run.id].some(v =>
          v.toLowerCase().includes(words)
        )
    );
    const more = !!this.list.next && (this.limit < MAX_PAGE || this.older.next);
    this.more.textContent = this.trans.__('Show %1 older runs', this.settings.runsShown);
    if (!shown.length) {
      // The filter sees the runs read so far: older ones may match, one click away.
      const empty = !this.list.runs.length
        ? this.trans.__(
            'No runs yet: try %%flow in a notebook, or `labloom run file.py:flow` in a terminal.'
          )
        : more
          ? this.trans.__('No run among the %1 newest matches the filter.', read.length)
          : this.trans.__('No run matches the filter.');
      this.rows.clear();
      this.runs.replaceChildren(el('p', { class: 'labloom-empty' }, empty));
      if (more) {
        this.runs.append(this.more);
      }
      return;
    }
    // Rows are kept by run id and patched: only new rows are made, and nodes move only when
    // the order changed, so a focused row keeps focus and the list keeps its scroll.
    const rows = shown.map(run => {
      let row = this.rows.get(run.id);
      if (!row) {
        row = makeRunRow(run, this);
        this.rows.set(run.id, row);
      }
      fillRunRow(row, run, this);
      return row;
    });
    const keep = new Set(rows);
    for (const [id, row] of this.rows) {
      if (!keep.has(row)) {
        this.rows.delete(id);
      }
    }
    if (more) {
      rows.push(this.more);
    }
    for (const child of Array.from(this.runs.children)) {
      if (!keep.has(child as HTMLElement) && child !== this.more) {
        child.remove();
      }
    }
    if (!more) {
      this.more.remove();
    }
    rows.forEach((row, i) => {
      if (this.runs.children[i] !== row) {
        this.runs.insertBefore(row, this.runs.children[i] || null);
      }
    });
  }

  /** A run ticked or unticked (runs of one flow: compare, delete). */
  pick(run: IRunSummary, on: boolean): void {
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
      const gone = deletedBefore(error); // the store's server went away midway
      if (gone.length) {
        this.dropRuns(new Set(gone));
        this.runsDeleted.emit(gone);
      }
      return;
    }
    if (!result) {
      return;
    }
    const said = result.kept.length || filesNotDeleted(result);
    this.deleteNote.textContent = said ? deletedLabel(result, this.trans) : '';
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
    this.older.runs = this.older.runs.filter(run => !gone.has(run.id));
    this.showPicked();
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

  /** Past the newest MAX_PAGE runs (the page polled), older ones a page per click. */
  private async readOlder(): Promise<void> {
    try {
      await this.older.readMore(this.list?.runs || [], this.settings.runsShown, this.stateChoice.value);
    } catch (error: any) {
      this.error.textContent = this.trans.__('[labloom] cannot read runs: %1', error.message || error);
      return;
    }
    this.drawRuns();
  }

  private filter: HTMLInputElement;
  private compareButton: HTMLButtonElement;
  private deleteButton: HTMLButtonElement;
  readonly picked = new Set<string>();
  pickedFlow: string | null = null;
  private stateChoice: HTMLSelectElement;
  private runs: HTMLElement;
  private schedules: ScheduleList;
  private error: HTMLElement;
  private deleteNote: HTMLElement;
  private ticker: SafetyNet;
  private rows = new Map<string, HTMLElement>();
  private more = this.moreButton();
  private list: IRunList | null = null;
  private ticks = 0;
  private limit = DEFAULT_SETTINGS.runsShown;
  // Runs older than the polled page (its MAX_PAGE newest), read on request and kept.
  private older = new OlderRuns();
  private settings = DEFAULT_SETTINGS;
  readonly launch: LaunchSection;
}
