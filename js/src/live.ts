// Pushed updates: the server extension's watcher emits deltas of the store on jupyter_server's
// event bus (schema below; see src/labloom/server_extension/push.py), which JupyterLab reads on
// app.serviceManager.events.stream. LiveRuns is the one listener every view shares: it holds
// the running count (the one source of truth of the panel and the status bar), hands each
// event's run deltas to the views, and says when events were missed (a gap in `seq`, a
// restarted server, the browser tab shown again after sleep): then views catch up from the
// REST API by their cursors. SafetyNet is the one Poll setup the views share for the rest.
import { Event } from '@jupyterlab/services';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { IRunList, IRunSummary } from './api';

export const SCHEMA_ID = 'https://events.labloom.dev/labloom/runs/v1';

/** One run in an event: its summary (no message), and how its graph moved. */
export interface IRunDelta extends Omit<IRunSummary, 'message' | 'pid' | 'executor' | 'retry_of'> {
  from: string; // the cursor this delta starts from ('' for a run new to the watcher)
  to: string; // the cursor after it (GET runs/{id}?since= takes it)
  nodes: Record<string, any> | null; // null: the graph changed, read it by cursor
  lines?: number; // the run's last log line, when it logged since the last event
}

export interface IRunsEvent {
  seq: number;
  server: string;
  now: number;
  running: number;
  runs: IRunDelta[];
  deleted?: string[]; // runs this server deleted since its last event: views drop them
}

export class LiveRuns {
  constructor(events: Event.IManager | null) {
    this.events = events;
    events?.stream.connect(this.onEvent, this);
    document.addEventListener('visibilitychange', this.onVisibility);
  }

  /** Runs in state Running, as the server last said (an event or a REST answer). */
  get running(): number {
    return this._running;
  }

  get runningChanged(): ISignal<this, number> {
    return this._runningChanged;
  }

  /** Each event of the watcher, in order. */
  get changed(): ISignal<this, IRunsEvent> {
    return this._changed;
  }

  /** Events were (or may have been) missed: catch up from the REST API by cursor. */
  get missed(): ISignal<this, void> {
    return this._missed;
  }

  /** Whether the server pushes (it said so, or an event arrived): views poll only as a
   * safety net then. */
  get pushing(): boolean {
    return this.announced || this.server !== null;
  }

  /** A REST answer of the runs list: its running count, and whether the server pushes. */
  listed(list: IRunList): void {
    this.announced = this.announced || list.events === SCHEMA_ID;
    this.setRunning(list.running);
  }

  setRunning(running: number): void {
    if (running !== this._running) {
      this._running = running;
      this._runningChanged.emit(running);
    }
  }

  dispose(): void {
    this.events?.stream.disconnect(this.onEvent, this);
    document.removeEventListener('visibilitychange', this.onVisibility);
    Signal.clearData(this);
  }

  private onEvent(_: unknown, emission: Event.Emission): void {
    if (emission.schema_id !== SCHEMA_ID) {
      return;
    }
    const event = emission as unknown as IRunsEvent;
    const gap = this.server !== null && (event.server !== this.server || event.seq !== this.seq + 1);
    this.server = event.server;
    this.seq = event.seq;
    this.setRunning(event.running);
    if (gap) {
      this._missed.emit();
    }
    this._changed.emit(event);
  }

  private onVisibility = (): void => {
    // A hidden tab may have slept with its socket closed: catch up once when shown.
    if (document.visibilityState === 'visible') {
      this._missed.emit();
    }
  };

  private events: Event.IManager | null;
  private announced = false;
  private server: string | null = null;
  private seq = 0;
  private _running = 0;
  private _runningChanged = new Signal<this, number>(this);
  private _changed = new Signal<this, IRunsEvent>(this);
  private _missed = new Signal<this, void>(this);
}

/** How a view's safety-net poll goes (see SafetyNet). */
export interface ISafetyNetOptions {
  /** One tick: read the view's data from the REST API. */
  factory: () => Promise<void>;
  /** Milliseconds between ticks once the server is seen pushing. */
  pushed: number;
  /** Milliseconds between ticks until then (the panel's setting); 1000 when not given. */
  polled?: () => number;
  /** Whether to stand by now (hidden, ended), besides while the browser tab is hidden. */
  standby: () => boolean;
  name: string;
}

const MAX_BACKOFF = 60000; // ms: the longest a failing poll waits

/**
 * A view's Poll (@lumino/polling: backoff, standby while hidden, as JupyterLab's and
 * dask-labextension's views poll), kept as a safety net for pushed updates: every second
 * until the server is seen pushing, then every `pushed` ms. `pace()` after each event or
 * answer follows `live.pushing`; `refresh()` ticks now (a view catching up).
 */
export class SafetyNet {
  constructor(
    private live: LiveRuns,
    private options: ISafetyNetOptions
  ) {
    this.poll = new Poll({
      factory: options.factory,
      frequency: { interval: this.interval(), backoff: true, max: MAX_BACKOFF },
      standby: () => options.standby() || 'when-hidden',
      name: options.name
    });
  }

  pace(): void {
    const interval = this.interval();
    if (this.poll.frequency.interval !== interval) {
      this.poll.frequency = { interval, backoff: true, max: MAX_BACKOFF };
    }
  }

  refresh(): Promise<void> {
    return this.poll.refresh();
  }

  dispose(): void {
    this.poll.dispose();
  }

  /** Milliseconds between ticks now. */
  interval(): number {
    return this.live.pushing ? this.options.pushed : (this.options.polled?.() ?? 1000);
  }

  readonly poll: Poll;
}
