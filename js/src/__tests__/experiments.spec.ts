// The Experiments view mounted on a model standing in for the kernel (or the REST routes),
// with Observable Plot stood in for (it ships as ES modules, which these tests do not load).
jest.mock('@observablehq/plot', () => {
  const mark = (kind: string) => (data: any, options: any = {}) => ({ kind, data, options });
  return {
    plot: () => document.createElementNS('http://www.w3.org/2000/svg', 'svg'),
    dot: mark('dot'), line: mark('line'), ruleX: mark('ruleX'), text: mark('text'), axisX: mark('axisX')
  };
});

import { mountExperiments } from '../experiments';

const TOTAL = 6000; // past the rows the view sorts itself: the server sorts, filters and pages
const columns = [{ kind: 'param', name: 'depth', type: 'number' },
  { kind: 'metric', name: 'auc', type: 'number' }];
// Every 100th child failed, before it logged its auc.
const rows: any[] = Array.from({ length: TOTAL }, (_, i) => ({
  run_id: 'r', task_run_id: `r.${i}`, task: 'train', map_index: i, duration: 1,
  state: i % 100 ? 'Completed' : 'Failed', params: { depth: i % 7 },
  metrics: i % 100 ? { auc: (i % 7) / 10 } : {}
}));

function answer(msg: any) {
  let kept = msg.filter === 'state=Failed' ? rows.filter(r => r.state === 'Failed') : rows.slice();
  if (msg.sort === 'metrics.auc') {
    const present = kept.filter(r => r.metrics.auc !== undefined);
    present.sort((a, b) => (msg.desc ? -1 : 1) * ((a.metrics.auc as number) - (b.metrics.auc as number)));
    kept = present.concat(kept.filter(r => r.metrics.auc === undefined));
  }
  const page = kept.slice(msg.offset, msg.offset + msg.limit);
  const end = msg.offset + page.length;
  return { event: 'experiments', req: msg.req, columns, total: kept.length, offset: msg.offset,
    limit: msg.limit, sort: msg.sort, desc: msg.desc, next: end < kept.length ? end : null,
    rows: page, version: 1 };
}

function modelAnsweringFrom() {
  const handlers: any[] = [];
  return {
    send: (msg: any) => setTimeout(() => handlers.forEach(h => h(answer(msg))), 0),
    on: (_: string, h: any) => handlers.push(h),
    off: () => undefined,
    get: () => null
  };
}

const settle = () => new Promise(done => setTimeout(done, 300));
// Waits for what the view shows, not a fixed time: with the suite's other worker busy, a page
// of 6,000 rows took longer than any fixed pause here.
async function until(check: () => boolean, ms = 20000): Promise<void> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) {
    await new Promise(done => setTimeout(done, 50));
  }
}

describe('the best row of a big run', () => {
  // Filtered to its failed children (none logged an auc), a big run's view starred the
  // first of them as "best auc" with no value: the server's answer, sorted by auc, was
  // taken as the best whatever its value.
  it('is none when no row the filter keeps has the metric', async () => {
    const box = document.createElement('div');
    document.body.replaceChildren(box);
    const view = mountExperiments({ model: modelAnsweringFrom(), box, onPick: () => undefined });
    view.open(null, 'train');
    const summary = () => box.querySelector('.labloom-exp-summary')?.textContent || '';
    await until(() => summary().includes('best auc'));
    expect(box.querySelector('.labloom-experiments')!.getAttribute('data-mode')).toBe('server');
    expect(summary()).toContain('best auc 0.6');
    const filter = box.querySelector('input.labloom-exp-filter') as HTMLInputElement;
    filter.value = 'state=Failed';
    filter.dispatchEvent(new Event('input'));
    // the filter waits for typing to pause, then asks the server again
    await until(() => summary().includes('match the filter'));
    await settle();
    expect(summary()).toContain('match the filter');
    expect(summary()).not.toContain('best auc');
    expect(box.querySelectorAll('.labloom-exp-best').length).toBe(0);
    view.destroy();
  }, 60000);
});

describe('a sweep grouped by a param', () => {
  // Grouped by depth, the seeds' aggregated auc sat right of the states, durations and the
  // other params, out of sight in a narrow pane; durations read "0.000048836 ± 0.00001...".
  const seeds: any[] = Array.from({ length: 12 }, (_, i) => ({
    run_id: 'r', task_run_id: `r.${i}`, task: 'train', map_index: i, duration: 1.5 + (i % 2),
    state: 'Completed', params: { depth: i % 3, seed: i % 4, criterion: 'gini' },
    metrics: { auc: 0.9 + (i % 3) / 100 }
  }));
  const small = [{ kind: 'param', name: 'depth', type: 'number' },
    { kind: 'param', name: 'seed', type: 'number' }, { kind: 'param', name: 'criterion', type: 'string' },
    { kind: 'metric', name: 'auc', type: 'number' }];
  const model = () => {
    const handlers: any[] = [];
    return {
      send: (msg: any) => setTimeout(() => handlers.forEach(h => h({
        event: 'experiments', req: msg.req, columns: small, total: seeds.length, offset: 0,
        limit: msg.limit, sort: msg.sort, desc: msg.desc, next: null, rows: seeds, version: 1
      })), 0),
      on: (_: string, h: any) => handlers.push(h),
      off: () => undefined,
      get: () => null
    };
  };

  it('shows the metrics first after the keys and n, durations in seconds', async () => {
    const box = document.createElement('div');
    document.body.replaceChildren(box);
    const view = mountExperiments({ model: model(), box, onPick: () => undefined });
    view.open(null, 'train');
    await settle();
    const summary = () => box.querySelector('.labloom-exp-summary')!.textContent || '';
    expect(summary()).toContain('12 rows · 1 column hidden (task)'); // the one task's column
    // Only the columns that vary: criterion is "gini" in every row. The summary said
    // "3 columns hidden" and left the user to guess which (every row is Completed too).
    const vary = box.querySelector('input.labloom-exp-vary') as HTMLInputElement;
    vary.checked = true;
    vary.dispatchEvent(new Event('change'));
    await settle();
    expect(summary()).toContain('12 rows · 3 columns hidden (state, task, criterion)');
    vary.checked = false;
    vary.dispatchEvent(new Event('change'));
    await settle();
    const depth = box.querySelector(".labloom-exp-group input[value='params.depth']") as HTMLInputElement;
    depth.checked = true;
    depth.dispatchEvent(new Event('change'));
    await settle();
    const headers = Array.from(box.querySelectorAll('.labloom-exp-th')).map(th => th.getAttribute('data-column'));
    expect(headers.slice(0, 3)).toEqual(['params.depth', 'n', 'metrics.auc']);
    expect(headers.indexOf('duration')).toBeGreaterThan(headers.indexOf('params.seed'));
    const duration = box.querySelector(".labloom-exp-td[data-column='duration']")!.textContent;
    expect(duration).toBe('2.00 s ± 0.58 s (1.50 s–2.50 s)');
    view.destroy();
  });

  // The x and colour choices stayed beside charts that do not read them: a curve runs along
  // its steps, parallel coordinates take their colour from the metric.
  it('offers only the choices the chart drawn reads', async () => {
    const box = document.createElement('div');
    document.body.replaceChildren(box);
    const view = mountExperiments({ model: model(), box, onPick: () => undefined });
    view.open(null, 'train');
    await settle();
    const shown = () => ['x', 'by'].filter(
      name => !(box.querySelector(`select.labloom-exp-${name}`) as HTMLSelectElement).hidden);
    expect(shown()).toEqual(['x', 'by']);
    const kind = box.querySelector('select.labloom-exp-chart-kind') as HTMLSelectElement;
    kind.value = 'parallel';
    kind.dispatchEvent(new Event('change'));
    await settle();
    expect(shown()).toEqual([]);
    view.destroy();
  });
});

describe('the summary of a run of one task', () => {
  // Its task column is left out (every row names the same task): the summary said
  // "1 columns hidden".
  it('says one column hidden in the singular', async () => {
    const box = document.createElement('div');
    document.body.replaceChildren(box);
    const view = mountExperiments({ model: modelAnsweringFrom(), box, onPick: () => undefined });
    view.open(null, 'train');
    await settle();
    const summary = box.querySelector('.labloom-exp-summary')!.textContent || '';
    expect(summary).toContain('· 1 column hidden (task) ·');
    view.destroy();
  });
});

describe('the best row among several runs (Compare)', () => {
  // Runs compared side by side share their indexes: "best auc 0.6 at index 6" named no run.
  it('names its run', async () => {
    const box = document.createElement('div');
    document.body.replaceChildren(box);
    const extra = [{ id: 'run_id', label: 'run', kind: 'fixed', type: 'string' }];
    const view = mountExperiments({ model: modelAnsweringFrom(), box, onPick: () => undefined, extra });
    view.open(null, 'train');
    await settle();
    const summary = box.querySelector('.labloom-exp-summary')!.textContent || '';
    expect(summary).toMatch(/best auc 0\.6 at index \d+ of run r\b/);
    view.destroy();
  });
});

describe('a big run sorted on nothing', () => {
  // Past LOCAL_MAX rows the server pages them: asked with no sort, it gave them in the order
  // logged (here the children finished last first), while a small run's are shown by index.
  it('asks the server for them by task and map index', async () => {
    const asked: any[] = [];
    const handlers: any[] = [];
    const logged = rows.slice().reverse();
    const model = {
      send: (msg: any) => {
        asked.push(msg);
        const answer_ = answer(msg);
        if (msg.sort !== 'index_order') {
          answer_.rows = logged.slice(msg.offset, msg.offset + msg.limit);
        }
        setTimeout(() => handlers.forEach(h => h(answer_)), 0);
      },
      on: (_: string, h: any) => handlers.push(h),
      off: () => undefined,
      get: () => null
    };
    const box = document.createElement('div');
    document.body.replaceChildren(box);
    const view = mountExperiments({ model, box, onPick: () => undefined });
    view.open(null, 'train');
    const indexes = () =>
      Array.from(box.querySelectorAll(".labloom-exp-td[data-column='map_index']")).map(
        td => td.textContent
      );
    await until(() => indexes().length > 3);
    expect(box.querySelector('.labloom-experiments')!.getAttribute('data-mode')).toBe('server');
    expect(indexes().slice(0, 3)).toEqual(['0', '1', '2']);
    const pages = asked.filter(msg => msg.event === 'experiments' && msg.limit > 1);
    expect(pages.every(msg => msg.sort === 'index_order' && msg.desc === false)).toBe(true);
    view.destroy();
  }, 60000);
});
