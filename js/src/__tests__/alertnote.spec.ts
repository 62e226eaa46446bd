import { alertLines, refusedLines } from '../alertnote';

// nullTranslator's bundle, without importing @jupyterlab in jest: %1, %2 filled in.
const trans: any = {
  __: (text: string, ...args: any[]) =>
    text.replace(/%(\d)/g, (_: string, n: string) => String(args[Number(n) - 1]))
};
const time = (iso: string | null) => (iso ? iso.slice(11, 16) : '-');

const schedule: any = {
  name: 'nightly',
  target: 'flows.py:etl',
  when: 'every 1h',
  paused: false,
  next_run: null,
  last_run: null,
  pending_alerts: null,
  undelivered_alert: null
};
const lost = {
  at: '2026-12-06T17:02:10+00:00',
  reason: 'HTTP 404 (no such webhook: a token mistyped or revoked?)',
  run_id: 'abc123',
  state: 'Failed',
  attempts: 2,
  count: 1,
  since: '2026-12-06T17:02:10+00:00'
};

describe('alertLines', () => {
  it('says nothing while every alert went out', () => {
    expect(alertLines(schedule, trans, time)).toEqual({ lost: null, retrying: null });
  });

  it('says an alert given up: why, which run, when; the fix under it and in its title', () => {
    const { lost: line } = alertLines({ ...schedule, undelivered_alert: lost }, trans, time);
    expect(line!.text).toBe(
      'Failure alert not delivered: HTTP 404 (no such webhook: a token mistyped or revoked?)' +
        ' · run abc123 Failed · 17:02'
    );
    expect(line!.fix).toBe('Check the webhook: `labloom schedule test-alert nightly`');
    expect(line!.title).toContain('given up 2026-12-06T17:02:10+00:00 after 2 attempt(s)');
    expect(line!.title).toContain('`labloom schedule test-alert nightly`');
    expect(line!.title).toContain('`labloom show abc123`');
  });

  it('counts the alerts given up since the first, and names a state without a run', () => {
    const since = '2026-12-06T15:00:00+00:00';
    const many = { ...lost, count: 3, run_id: null, state: 'overdue', since };
    const { lost: line } = alertLines({ ...schedule, undelivered_alert: many }, trans, time);
    expect(line!.text).toMatch(/^3 failure alerts not delivered since 15:00: HTTP 404 .* · overdue · 17:02$/);
    expect(line!.title).not.toContain('labloom show');
  });

  it('says an alert being retried quietly, and nothing of one not yet tried', () => {
    const next = '2026-12-06T17:03:00+00:00';
    const pending = { count: 1, attempts: 0, last_error: null, next_try: next };
    expect(alertLines({ ...schedule, pending_alerts: pending }, trans, time).retrying).toBeNull();
    const tried = { ...pending, attempts: 2, last_error: 'HTTP 500' };
    const { retrying } = alertLines({ ...schedule, pending_alerts: tried }, trans, time);
    expect(retrying!.text).toBe('alert retrying: HTTP 500, next 17:03');
    expect(retrying!.fix).toBeNull(); // nothing to do while it may yet go
    expect(retrying!.title).toContain('tried 2 time(s): HTTP 500');
  });
});

describe('refusedLines', () => {
  const refusal = {
    scheduler: '4242-abcd1234',
    host: 'lab-01',
    pid: 4242,
    reason: "its failure alerts go by mail, and LABLOOM_SMTP_PORT must be ...: fix it there",
    since: '2026-12-07T19:30:02+00:00'
  };

  it('says nothing while no live serve refuses the schedule', () => {
    expect(refusedLines(schedule, trans, time)).toEqual([]);
    expect(refusedLines({ ...schedule, refused_by: null }, trans, time)).toEqual([]);
  });

  it('says which serve refuses it and why (the fix in its reason), since when in its title', () => {
    const [line] = refusedLines({ ...schedule, refused_by: [refusal] }, trans, time);
    expect(line.text).toBe(
      'Not run by `labloom serve` pid 4242 on lab-01: its failure alerts go by mail, and ' +
        'LABLOOM_SMTP_PORT must be ...: fix it there'
    );
    expect(line.fix).toBeNull();
    expect(line.title).toBe(
      `${line.text}. Refused since 19:30; another serve with good settings may still run it.`
    );
  });
});
