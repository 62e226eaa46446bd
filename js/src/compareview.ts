// A main-area tab comparing several runs of one flow (picked in the Flows panel): their
// experiments in one table with a run column, from `GET experiments?runs=...`, drawn by the
// same Experiments view as a run's (experiments.js). A click on a row opens that run's tab,
// where the DAG's panel shows the task run's logs. Step curves as in a run's tab
// (comparecurves.ts). While a compared run runs, the view asks again as a run tab's does.
import { Widget } from '@lumino/widgets';

import { requestAPI } from './api';
import { escapeBidi } from './bidi';
import { curvePaths, mergeCurves } from './comparecurves';
import { mountExperiments } from './experiments';

type Callback = (...args: any[]) => void;

/** Answers the view's questions across runs; shaped like the model dag.js draws. */
class RunsModel {
  constructor(private runIds: string[]) {}

  on(event: string, callback: Callback): void {
    this.handlers.add(callback);
  }

  off(event: string, callback: Callback): void {
    this.handlers.delete(callback);
  }

  send(message: any): void {
    const reply = { event: message.event, req: message.req };
    const asked = message.event === 'curves' ? this.curves(message) : this.rows(message);
    void asked.then(
      answer => this.emit({ ...reply, ...answer }),
      error => this.emit({ ...reply, error: `${error.message || error}` })
    );
  }

  /** Whether a compared run may still log (true until an answer says none does). */
  get live(): boolean {
    return this.running;
  }

  private async rows(message: any): Promise<any> {
    const query = new URLSearchParams({ runs: this.runIds.join(','), desc: message.desc ? '1' : '0' });
    for (const name of ['sort', 'offset', 'limit', 'filter']) {
      if (message[name] !== null && message[name] !== undefined) {
        query.set(name, String(message[name]));
      }
    }
    const answer = await requestAPI<any>(`experiments?${query}`);
    this.running = Array.isArray(answer.running) && answer.running.length > 0;
    return answer;
  }

  private async curves(message: any): Promise<any> {
    const paths = curvePaths(this.runIds, message.metric, message.task_runs || null);
    const answers = await Promise.all(paths.map(path => requestAPI<any>(path)));
    return mergeCurves(message.metric, answers);
  }

  private emit(message: any): void {
    for (const callback of this.handlers) {
      callback(message);
    }
  }

  private handlers = new Set<Callback>();
  private running = true;
}

export class CompareView extends Widget {
  constructor(
    readonly runIds: string[],
    flow: string,
    openRun: (runId: string, taskRun?: string) => void
  ) {
    super();
    this.id = `labloom-compare-${runIds.join('-')}`;
    this.addClass('labloom-CompareView');
    this.title.label = `${escapeBidi(flow)} · ${runIds.length} runs`;
    this.title.closable = true;
    const box = document.createElement('div');
    box.className = 'labloom-widget';
    this.node.append(box);
    const model = new RunsModel(runIds);
    this.view = mountExperiments({
      model,
      box,
      extra: [{ id: 'run_id', label: 'run', kind: 'fixed', type: 'string' }],
      onPick: (row: any) => openRun(row.run_id, row.task_run_id),
      // A compared run still running (today's beside last night's): asked again, as a run
      // tab's view is, until a read made after every compared run ended.
      live: () => model.live,
      visible: () => this.isVisible
    });
    this.view.open(null, `Experiments · ${flow} · runs ${runIds.join(', ')}`);
    this.ticker = window.setInterval(() => this.view.tick(), 1000);
  }

  dispose(): void {
    window.clearInterval(this.ticker);
    this.view.destroy();
    super.dispose();
  }

  private view: any;
  private ticker: number;
}
