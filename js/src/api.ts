// Calls to labloom's REST API under {base_url}labloom/api/ (see docs/rest-api.md).
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface IRunSummary {
  id: string;
  flow: string;
  state: string;
  message: string;
  origin: string | null;
  host: string | null;
  pid: number | null;
  executor: string | null;
  created: number | null;
  started: number | null;
  ended: number | null;
  duration: number | null;
  counts: Record<string, number>; // task runs by state
  done: number;
  total: number;
  retry_of: string | null;
}

export interface IRunList {
  runs: IRunSummary[];
  next: string | null;
  running: number;
  now: number;
  events?: string; // the schema of the events the server pushes (live.ts)
}

export interface ISchedule {
  name: string;
  target: string;
  when: string;
  paused: boolean;
  next_run: string | null;
  last_run: { slot: string; status: string; run_id: string | null } | null;
  problem?: string | null; // why this host cannot compute its times (a time zone it lacks)
  pending_alerts?: IPendingAlerts | null; // failure alerts still to send (session 48)
  undelivered_alert?: IUndeliveredAlert | null; // alerts given up since the last delivered one
  refused_by?: IRefusal[] | null; // live `labloom serve` processes that will not run it (s. 57)
}

/** A live `labloom serve` that will not run a schedule: why, naming the fix, and since when. */
export interface IRefusal {
  scheduler: string;
  host: string;
  pid: number;
  reason: string;
  since: string;
}

/** A schedule's failure alerts still to send; the oldest one's attempts, last error, next try. */
export interface IPendingAlerts {
  count: number;
  attempts: number;
  last_error: string | null;
  next_try: string | null;
}

/** The latest of a schedule's alerts given up (retries spent), `count` of them since `since`. */
export interface IUndeliveredAlert {
  at: string;
  reason: string;
  run_id: string | null;
  state: string;
  attempts: number;
  count: number;
  since: string;
}

export interface IScheduleList {
  schedules: ISchedule[];
  scheduler?: { running: boolean }; // whether a `labloom serve` is alive
}

export const FINAL_STATES = new Set([
  'Completed',
  'Cached',
  'Failed',
  'UpstreamFailed',
  'Cancelled',
  'Crashed'
]);

/** An error answer, with its JSON body: some carry more than their message (a delete cut off
 * midway lists the runs it deleted before, docs/rest-api.md). */
export class APIError extends ServerConnection.ResponseError {
  constructor(
    response: Response,
    message: string,
    readonly body: unknown
  ) {
    super(response, message);
  }
}

export async function requestAPI<T>(
  path: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, 'labloom', 'api', path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error: any) {
    // The browser's bare "Failed to fetch" said nothing of what failed: the server is gone
    // (stopped, restarting, the network). Views show this and read again once it answers.
    if (error instanceof ServerConnection.NetworkError) {
      throw new Error(`the Jupyter server does not answer (${error.message}): stopped or restarting?`);
    }
    throw error;
  }
  const text = await response.text();
  let data: any = text;
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    // not JSON: keep the text for the error message
  }
  if (!response.ok) {
    throw new APIError(response, data.message || String(data), data);
  }
  return data as T;
}

/** How a run was started, in the words of the panel: `labloom run` is the CLI. */
export function originLabel(origin: string | null): string {
  return origin === 'script' ? 'CLI' : origin || '';
}

/** A time as short as it can be: the time of day for today, else the date too. */
export function when(stamp: number | null): string {
  if (stamp == null) {
    return '';
  }
  const date = new Date(stamp * 1000);
  if (date.toDateString() === new Date().toDateString()) {
    return date.toLocaleTimeString();
  }
  return date.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' });
}

/** A duration as the DAG's header (dag.js) and the HTML summary (html.py) say it: whole
 * seconds gone by, "0:13" for 13.6 s. Rounded, a run tab said "duration 0:14" above its
 * header's "0:13", and its Flows panel row 0:14 too. */
export function seconds(value: number | null): string {
  if (value == null) {
    return '';
  }
  const t = Math.max(0, Math.floor(value));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const s = t % 60;
  const pad = (n: number) => String(n).padStart(2, '0');
  return h ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

// Build an element whose text is set as text, never parsed as HTML.
export function el(
  tag: string,
  attrs: Record<string, string> = {},
  text?: string
): HTMLElement {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    node.setAttribute(k, v);
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}
