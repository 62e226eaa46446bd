// A main-area tab for one run: its facts (parameters, executor, host, cluster), then the live
// DAG drawn by the shared renderer (dag.js) over a RestRunModel. Pushed deltas (LiveRuns) patch
// it as the run goes on; a delta that does not follow on from its cursor, or missed events,
// make it catch up from the REST API by cursor. A slow Poll stays as a safety net (every
// second only until the server is seen pushing), standing by while hidden or ended.
import { nullTranslator, TranslationBundle } from '@jupyterlab/translation';
import { CommandRegistry } from '@lumino/commands';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { el, FINAL_STATES, originLabel, requestAPI, seconds, when } from './api';
import { escapeBidi } from './bidi';
import { render } from './dag';
import { IRunsEvent, LiveRuns, SafetyNet } from './live';
import { showParameters } from './paramsummary';
import { RestRunModel } from './runmodel';

const SAFETY_NET = 10000; // ms between polls once the server pushes

// dask-labextension's command that points its panes at a dashboard URL and opens them.
const DASK_LAYOUT = 'dask:populate-and-launch-layout';

export class RunView extends Widget {
  constructor(
    readonly runId: string,
    private commands: CommandRegistry,
    live: LiveRuns,
    private trans: TranslationBundle = nullTranslator.load('labloom')
  ) {
    super();
    this.id = `labloom-run-${runId}`;
    this.addClass('labloom-RunView');
    this.title.label = trans.__('run %1', runId);
    this.title.closable = true;
    this.facts = el('dl', { class: 'labloom-RunView-facts' });
    this.notice = el('div', { class: 'labloom-RunView-notice' });
    const dag = (this.dag = el('div', { class: 'labloom-RunView-dag' }));
    this.node.append(this.facts, this.notice, dag);
    this.model = new RestRunModel(runId, (text, error) => this.say(text, error));
    // The facts above say the run's message: the DAG makes no line of its own for it.
    this.cleanup = render({ model: this.model, el: dag, showsMessage: true });
    // The dashboard link opens dask-labextension's panes inside Lab when it is installed.
    dag.addEventListener(
      'click',
      event => {
        const link = (event.target as HTMLElement).closest('a.labloom-dashboard');
        if (link && this.commands.hasCommand(DASK_LAYOUT)) {
          event.preventDefault();
          void this.commands.execute(DASK_LAYOUT, { url: link.getAttribute('href') || '' });
        }
      },
      true
    );
    this.poll = new SafetyNet(live, {
      factory: () => this.refresh(),
      pushed: SAFETY_NET,
      standby: () => !this.isVisible || this.ended,
      name: `labloom:run:${runId}`
    });
    live.changed.connect(this.onEvent, this);
    live.missed.connect(() => this.catchUp(), this);
  }

  private onEvent(_: LiveRuns, event: IRunsEvent): void {
    this.poll.pace();
    if (!this.deleted && event.deleted?.includes(this.runId)) {
      this.markDeleted(); // from another window of this server
      return;
    }
    for (const delta of event.runs) {
      if (delta.id !== this.runId || this.deleted) {
        continue;
      }
      if (!FINAL_STATES.has(delta.state)) {
        this.ended = false; // a retry in its kernel may reopen a run
      }
      if (this.model.applyDelta(delta)) {
        this.showRun(this.model.detail);
      } else {
        this.catchUp();
      }
    }
  }

  /** Read what changed since this tab's cursor now (the poll's next tick, at once). */
  private catchUp(): void {
    if (this.isVisible) {
      void this.poll.refresh();
    }
  }

  /** Show a task run's logs and traceback in the DAG's panel (a compare tab's row), once the
   * run is drawn. */
  showTaskRun(taskRunId: string): void {
    void this.drawn.then(() =>
      this.model.send({ event: 'select', node: null, task_run: taskRunId })
    );
  }

  async refresh(): Promise<void> {
    if (this.deleted) {
      return;
    }
    try {
      await this.model.refresh();
    } catch (error: any) {
      if (error?.response?.status === 404) {
        this.markDeleted(); // deleted since (the panel, labloom delete), or never there
        return;
      }
      // The server gone, or its store (a PostgreSQL down, a locked file): the tab kept
      // showing the run as last read, "Running" with its clock ticking, and said nothing.
      this.unreadable = true;
      this.notice.textContent = this.trans.__(
        '[labloom] cannot read run %1 now: %2. This tab shows it as last read, and reads it again.',
        this.runId,
        error?.message || String(error)
      );
      this.notice.setAttribute('data-error', 'true');
      throw error; // the poll backs off
    }
    if (this.unreadable) {
      this.unreadable = false;
      this.notice.textContent = '';
      this.notice.setAttribute('data-error', 'false');
    }
    const run = this.model.detail;
    this.showRun(run);
    this.markDrawn();
    this.poll.pace(); // once the server pushes, the run is read only as a safety net
    if (this.clusters === null) {
      this.clusters = await requestAPI<any>('clusters').catch(() => ({ clusters: [] }));
      this.showFacts(run);
    }
  }

  private showRun(run: any): void {
    this.title.label = `${escapeBidi(run.flow)} · ${this.trans.__(run.state)}`;
    // Tabs of one flow's runs read alike ("grid · Completed"): the tab's tooltip names the run.
    this.title.caption = this.trans.__('run %1 of %2: %3', this.runId, escapeBidi(run.flow), run.state);
    this.node.setAttribute('data-state', run.state);
    this.showFacts(run);
    if (FINAL_STATES.has(run.state)) {
      this.ended = true;
    }
  }

  protected onAfterShow(): void {
    if (this.ended && !this.deleted) {
      // An ended run's tab stands by; shown again, one small read by cursor tells whether the
      // run is still in the store (`labloom delete`, another user's panel).
      void this.refresh().catch(error => console.warn('[labloom]', error));
      return;
    }
    this.catchUp();
  }

  protected onAfterAttach(): void {
    this.catchUp();
  }

  dispose(): void {
    this.poll.dispose();
    Signal.disconnectReceiver(this);
    this.cleanup();
    super.dispose();
  }

  /** The run left the store: the tab stays, saying so, and stops asking for it. */
  markDeleted(): void {
    this.deleted = this.ended = true;
    this.title.label = this.trans.__('run %1 · deleted', this.runId);
    this.node.setAttribute('data-state', 'deleted');
    this.notice.textContent = this.model.detail
      ? this.trans.__(
          'Run %1 was deleted from the store; what this tab shows is all that is left of it.',
          this.runId
        )
      : this.trans.__('Run %1 is not in the store: deleted, or a mistyped id.', this.runId);
    this.notice.setAttribute('data-error', 'true');
    // Never read (a tab restored from yesterday's layout): no empty DAG, and no Cancel,
    // Timeline or Experiments button that could only fail.
    this.dag.hidden = !this.model.detail;
  }

  /** After Retry the same tab may be asked to follow again. */
  reopen(): void {
    if (this.deleted) {
      return;
    }
    this.ended = false;
    this.catchUp();
  }

  private showFacts(run: any): void {
    const trans = this.trans;
    const facts: [string, string][] = [
      ['state', run.message ? `${run.state}: ${run.message}` : run.state],
      ['run', run.id + (run.retry_of ? trans.__(' (retry of %1)', run.retry_of) : '')],
      ['parameters', ''], // showParameters
      ['executor', run.executor || ''],
      ['host', `${run.host || ''}${run.pid ? trans.__(' (pid %1)', run.pid) : ''}`],
      ['origin', originLabel(run.origin)],
      ['started', when(run.started)],
      ['duration', seconds(run.duration)],
      ['task runs', trans.__('%1/%2 done', run.done, run.total)]
    ];
    const cluster = this.clusterOf(run);
    if (cluster) {
      facts.push(['cluster', cluster]);
    }
    // Kept and patched, not made again at each pushed update of a running run: a user
    // selecting the run id to copy it, or scrolling a long parameter list, lost it each time.
    const keys = facts.map(([key]) => key).join('\n');
    if (keys !== this.factKeys) {
      this.factKeys = keys;
      this.factValues = new Map();
      const rows: HTMLElement[] = [];
      for (const [key] of facts) {
        const value = el('dd', { 'data-fact': key });
        this.factValues.set(key, value);
        rows.push(el('dt', {}, trans.__(key)), value);
      }
      this.facts.replaceChildren(...rows);
    }
    showParameters(this.factValues.get('parameters')!, run.parameters);
    for (const [key, value] of facts) {
      if (key === 'parameters') {
        continue;
      }
      const node = this.factValues.get(key)!;
      const text = escapeBidi(value);
      if (node.textContent !== text) {
        node.textContent = text;
      }
    }
  }

  private clusterOf(run: any): string {
    const meta = run.metadata || {};
    const known = (this.clusters && this.clusters.clusters) || [];
    const match = known.find(
      (c: any) =>
        (run.dashboard && c.dashboard_link === run.dashboard) ||
        (meta.address && c.scheduler_address === meta.address)
    );
    const where = match
      ? `${match.name} (dask-labextension, ${match.scheduler_address})`
      : meta.address || '';
    return where && meta.cluster ? `${where}: ${meta.cluster}` : where;
  }

  private say(text: string, error: boolean): void {
    this.unreadable = false; // this says more than a read that failed before it
    this.notice.textContent = text;
    this.notice.setAttribute('data-error', error ? 'true' : 'false');
    if (!error) {
      this.reopen();
    }
  }

  private model: RestRunModel;
  private markDrawn: () => void = () => undefined;
  private drawn = new Promise<void>(resolve => {
    this.markDrawn = resolve;
  });
  private facts: HTMLElement;
  private notice: HTMLElement;
  private dag: HTMLElement;
  private cleanup: () => void;
  private poll: SafetyNet;
  private ended = false;
  private deleted = false;
  private unreadable = false; // the last read failed: the notice says so until one succeeds
  private factKeys = '';
  private factValues = new Map<string, HTMLElement>();
  private clusters: any = null;
}
