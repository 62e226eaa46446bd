// A stored run seen through the REST API, shaped like the anywidget model that dag.js draws:
// get(name), on/off(event, callback), send(message). So the Lab run view and the notebook
// widget share one renderer; this class only answers its messages with REST calls.
import { FINAL_STATES, requestAPI } from './api';
import { IRunDelta } from './live';

type Callback = (...args: any[]) => void;
const MAX_LINES = 2000;

interface ITaskLine {
  id: number;
  time: number;
  level: number;
  text: string;
}

interface ILogPage {
  state: string;
  lines: ITaskLine[];
  next: number;
  more: boolean;
  task_runs: {
    id: string;
    name: string;
    state: string;
    message: string;
    traceback: string;
    left_map: string | null; // why a map's child left its map (the panel says so)
  }[];
  cut: { task_run_id: string; kept: number; cut: number }[];
}

/** What the side panel says under a task run's log when the store did not keep all of it
 * (it keeps the first LABLOOM_LOG_LINES lines of each task run), as `labloom logs` says. */
function cutNote(page: ILogPage, taskRun: string): string {
  const found = (page.cut || []).find(c => c.task_run_id === taskRun);
  return found && found.cut
    ? `[labloom] ${found.cut.toLocaleString()} more line(s) not stored: the store keeps ` +
        `the first ${found.kept.toLocaleString()} of a task run (LABLOOM_LOG_LINES raises it)`
    : '';
}

/** A cursor as the server hands it out: "states.lines.digest" (see docs/rest-api.md). */
function parseCursor(text: string | null): { states: number; digest: string } | null {
  const parts = (text || '').split('.');
  return parts.length === 3 ? { states: Number(parts[0]), digest: parts[2] } : null;
}

export class RestRunModel {
  constructor(
    readonly runId: string,
    private notify: (text: string, error: boolean) => void
  ) {}

  detail: any = null; // the run as the last GET runs/{id} left it
  private cursor: string | null = null; // the last answer's: the next poll asks what changed

  get(name: string): any {
    return this.values[name];
  }

  on(event: string, callback: Callback): void {
    if (!this.handlers.has(event)) {
      this.handlers.set(event, new Set());
    }
    this.handlers.get(event)!.add(callback);
  }

  off(event: string, callback: Callback): void {
    this.handlers.get(event)?.delete(callback);
  }

  get finished(): boolean {
    return this.detail !== null && FINAL_STATES.has(this.detail.state);
  }

  /**
   * One poll: the run's graph, states and header; new log lines of the followed task run.
   * The first poll reads the whole run (`tasks=0`: no task runs); later ones pass the last
   * answer's cursor and get only what changed (see docs/rest-api.md).
   */
  async refresh(): Promise<void> {
    const query = this.cursor
      ? `since=${encodeURIComponent(this.cursor)}&lines=0`
      : 'tasks=0';
    const answer = await requestAPI<any>(`runs/${this.runId}?${query}`);
    // An answer by cursor leaves out what does not change (parameters, metadata, target).
    this.detail = this.cursor && this.detail ? { ...this.detail, ...answer } : answer;
    this.cursor = answer.cursor || null;
    let states = answer.states;
    if (!('graph' in answer)) {
      // Only the nodes that changed: the others keep their last state.
      states = { ...this.values.states, ...states };
    }
    // The graph first: the renderer draws states onto the graph's nodes.
    const update: Record<string, any> =
      'graph' in answer ? { graph: answer.graph } : {};
    update.states = states;
    update.header = answer.header;
    for (const [name, value] of Object.entries(update)) {
      const text = JSON.stringify(value);
      if (text !== this.seen[name]) {
        this.seen[name] = text;
        this.values[name] = value;
        this.emit(`change:${name}`);
      }
    }
    if (this.followed) {
      await this.followInTurn();
    }
    if (this.selectedIn(answer.states)) {
      await this.rereadMap();
    }
  }

  /** Reads of the followed log one after another: two at once would add lines twice. */
  private followInTurn(): Promise<void> {
    this.following = this.following.then(() => (this.followed ? this.follow(false) : undefined));
    this.following = this.following.catch(error => console.warn('[labloom]', error));
    return this.following;
  }

  /**
   * The first read of the log of a node just picked, in turn with the others (a pushed
   * delta's read beside it added its lines twice). Its error is the pick's to say.
   */
  private followPicked(): Promise<void> {
    const picked = this.followed;
    const read = this.following.then(() =>
      this.followed === picked ? this.follow(true) : undefined
    );
    this.following = read.catch(() => undefined);
    return read;
  }

  /** Whether the node the side panel shows is among `nodes` (the states that changed). */
  private selectedIn(nodes: Record<string, any> | null | undefined): boolean {
    return !!this.node && !!this.node.node && !!nodes && this.node.node in nodes;
  }

  /**
   * The map node the side panel shows changed: its state and the child page shown are read
   * again, as the kernel sends them again to the notebook's widget (else the tab showed the
   * children as they were when clicked). In turn with the log reads; one queued at most.
   */
  private rereadMap(): Promise<void> {
    if (this.node?.kind !== 'map' || this.mapQueued) {
      return this.following;
    }
    this.mapQueued = true;
    this.following = this.following
      .then(async () => {
        this.mapQueued = false;
        const shown = this.node;
        if (shown?.kind !== 'map') {
          return;
        }
        const node = await requestAPI<any>(
          `runs/${this.runId}/nodes/${encodeURIComponent(shown.node)}?page=${this.childPage}`
        );
        if (this.node !== shown) {
          return; // another node was picked meanwhile
        }
        this.node = node;
        if (!this.followed && node.state !== shown.state) {
          this.emitDetail();
        }
        this.emit('msg:custom', { event: 'children', ...node.children });
      })
      .catch(error => console.warn('[labloom]', error));
    return this.following;
  }

  /**
   * A pushed delta of this run (live.ts), costing the nodes that changed. Its node states are
   * the latest of every node that changed since `from`, so it applies to a model whose cursor
   * lies between `from` and `to` (the same graph); one at `to` or past it has it already.
   * False when it does not apply (events missed, or the graph itself changed: `nodes` is
   * null): then `refresh()` catches up by cursor.
   */
  applyDelta(delta: IRunDelta): boolean {
    const { nodes, from, to, lines, ...summary } = delta;
    const [mine, start, end] = [this.cursor, from, to].map(parseCursor);
    if (nodes === null || !mine || !start || !end || !this.detail) {
      return false;
    }
    if (mine.digest !== end.digest || start.digest !== end.digest || mine.states < start.states) {
      return false;
    }
    if (mine.states >= end.states) {
      // States read already (a catch-up answer may be ahead of the events), or none changed:
      // a task that only logs. Its new lines are read now, not at the next safety net.
      if (lines !== undefined && this.followed) {
        void this.followInTurn();
      }
      return true;
    }
    this.cursor = to;
    this.detail = { ...this.detail, ...summary };
    if (Object.keys(nodes).length) {
      this.values.states = { ...this.values.states, ...nodes };
      delete this.seen.states; // the next full answer is compared afresh
      this.emit('change:states');
    }
    this.values.header = {
      ...this.values.header,
      state: delta.state,
      counts: delta.counts,
      total: delta.total,
      elapsed: delta.duration
    };
    delete this.seen.header;
    this.emit('change:header');
    const selectedChanged = this.selectedIn(nodes);
    if ((lines !== undefined || selectedChanged) && this.followed) {
      void this.followInTurn();
    }
    if (selectedChanged) {
      void this.rereadMap();
    }
    return true;
  }

  send(message: any): void {
    void this.handle(message).catch(error =>
      this.notify(`[labloom] ${message.event} failed: ${error.message || error}`, true)
    );
  }

  private async handle(message: any): Promise<void> {
    const run = `runs/${this.runId}`;
    if (message.event === 'cancel') {
      await requestAPI(`${run}/cancel`, { method: 'POST' });
      this.notify('Cancel requested: the run stops within a second or so.', false);
    } else if (message.event === 'retry') {
      const answer = await requestAPI<any>(`${run}/retry`, { method: 'POST' });
      this.notify(
        `Retry started (pid ${answer.pid}): the new run appears in the Flows panel.`,
        false
      );
    } else if (message.event === 'page') {
      const node = await requestAPI<any>(
        `${run}/nodes/${encodeURIComponent(message.node)}?page=${message.page}`
      );
      if (this.node?.node === message.node) {
        this.childPage = node.children.page;
      }
      this.emit('msg:custom', { event: 'children', ...node.children });
    } else if (message.event === 'select') {
      await this.select(message.node, message.task_run);
    } else if (message.event === 'timeline') {
      const answer = await requestAPI<any>(`${run}/timeline`);
      this.emit('msg:custom', { event: 'timeline', ...answer });
    } else if (message.event === 'experiments' || message.event === 'curves') {
      await this.experiments(message);
    }
  }

  /**
   * The Experiments view's questions (experiments.js), answered by the REST routes with the
   * question's `req`, so each view takes only its own. A map node's view asks with its node
   * (`task=`): that map's children only, as in the cell.
   */
  private async experiments(message: any): Promise<void> {
    const reply = { event: message.event, req: message.req, node: message.node };
    const query = new URLSearchParams();
    let path = `runs/${this.runId}/experiments`;
    if (message.event === 'curves') {
      path += '/curves';
      query.set('metric', message.metric);
      if (message.task_runs) {
        query.set('task_runs', message.task_runs.join(','));
      }
    } else {
      for (const name of ['sort', 'offset', 'limit', 'filter']) {
        if (message[name] !== null && message[name] !== undefined) {
          query.set(name, String(message[name]));
        }
      }
      query.set('desc', message.desc ? '1' : '0');
      if (message.node) {
        query.set('task', message.node);
      }
    }
    try {
      const answer = await requestAPI<any>(`${path}?${query}`);
      this.emit('msg:custom', { ...reply, ...answer });
    } catch (error: any) {
      this.emit('msg:custom', { ...reply, error: `${error.message || error}` });
    }
  }

  private async select(nodeId: string | null, child?: string): Promise<void> {
    this.followed = null;
    if ((nodeId === null || nodeId === undefined) && !child) {
      this.node = null; // closed: a change of the node must not open it again
      this.emit('msg:custom', { event: 'detail', node: null });
      return;
    }
    if (nodeId === null || nodeId === undefined) {
      // A row of the Experiments view picked without its node (the REST rows have none):
      // the task run alone, its logs and traceback.
      this.node = { node: '', name: '', kind: 'task', state: '' };
      this.followed = { id: child!, after: 0, lines: [], info: null, cut: '' };
      await this.followPicked();
      return;
    }
    const node = await requestAPI<any>(
      `runs/${this.runId}/nodes/${encodeURIComponent(nodeId)}`
    );
    if (!child || this.node?.node !== node.node) {
      this.childPage = 0; // a child picked in the list keeps the page it is on
    }
    this.node = node;
    const taskRun = child || (node.task_run ? node.task_run.id : null);
    if (taskRun) {
      this.followed = { id: taskRun, after: 0, lines: [], info: null, cut: '' };
      await this.followPicked();
    } else {
      this.emitDetail();
    }
    if (node.kind === 'map' && !child) {
      this.emit('msg:custom', { event: 'children', ...node.children });
    }
  }

  /** Read the followed task run's log on from its cursor; `fresh` redraws the whole panel. */
  private async follow(fresh: boolean): Promise<void> {
    const followed = this.followed!;
    let changed = fresh;
    const added: ITaskLine[] = [];
    const cutBefore = followed.cut;
    for (;;) {
      const page = await requestAPI<ILogPage>(
        `runs/${this.runId}/logs?task=${encodeURIComponent(followed.id)}&after=${followed.after}`
      );
      if (this.followed !== followed) {
        return; // another node was picked meanwhile
      }
      followed.after = page.next;
      added.push(...page.lines);
      const info = page.task_runs[0] || null;
      if (JSON.stringify(info) !== JSON.stringify(followed.info)) {
        followed.info = info;
        changed = true;
      }
      followed.cut = cutNote(page, followed.id);
      if (!page.more) {
        break;
      }
    }
    followed.lines = followed.lines.concat(added).slice(-MAX_LINES);
    if (changed) {
      this.emitDetail();
    } else if (added.length || followed.cut !== cutBefore) {
      const log = { event: 'log', task_run: followed.id, lines: added, cut: followed.cut };
      this.emit('msg:custom', log);
    }
  }

  private emitDetail(): void {
    const node = this.node;
    const followed = this.followed;
    const info = followed ? followed.info : null;
    this.emit('msg:custom', {
      event: 'detail',
      node: node.node,
      name: node.name,
      kind: node.kind,
      state: node.state,
      task_run: info
        ? {
            id: info.id,
            name: info.name,
            index: null,
            state: info.state,
            message: info.message,
            left_map: info.left_map ?? null
          }
        : null,
      lines: followed ? followed.lines : [],
      cut: followed ? followed.cut : '',
      traceback: info ? info.traceback : ''
    });
  }

  private emit(event: string, ...args: any[]): void {
    for (const callback of this.handlers.get(event) || []) {
      callback(...args);
    }
  }

  private following: Promise<void> = Promise.resolve();
  private handlers = new Map<string, Set<Callback>>();
  private values: Record<string, any> = { graph: {}, states: {}, header: {} };
  private seen: Record<string, string> = {};
  private node: any = null; // the node the side panel shows, as GET runs/{id}/nodes read it
  private childPage = 0; // the page of a map node's children the side panel shows
  private mapQueued = false;
  private followed: {
    id: string;
    after: number;
    lines: ITaskLine[];
    info: any;
    cut: string; // the note on lines the store did not keep, '' for none
  } | null = null;
}
