// The Experiments view's choices as a user makes them, on a small run (sorted, filtered and
// grouped in the page): the best row's direction, a filter naming no column, a group's
// metric that only some of its rows logged.
jest.mock('@observablehq/plot', () => {
  const mark = (kind: string) => (data: any, options: any = {}) => ({ kind, data, options });
  return {
    plot: () => document.createElementNS('http://www.w3.org/2000/svg', 'svg'),
    dot: mark('dot'), line: mark('line'), ruleX: mark('ruleX'), text: mark('text'), axisX: mark('axisX')
  };
});

import { mountExperiments } from '../experiments';
import { modelOf } from './expmodel';

// Twelve children: auc grows with depth, loss falls with it; only seed 3 logged "extra".
const rows: any[] = Array.from({ length: 12 }, (_, i) => ({
  run_id: 'r', task_run_id: `r.${i}`, task: 'train', map_index: i, duration: 1,
  state: 'Completed', params: { depth: Math.floor(i / 4), seed: i % 4 },
  metrics: { auc: 0.5 + i / 100, loss: 1 - i / 100, ...(i % 4 === 3 ? { extra: 3 } : {}) }
}));
const columns = [{ kind: 'param', name: 'depth', type: 'number' },
  { kind: 'param', name: 'seed', type: 'number' }, { kind: 'metric', name: 'auc', type: 'number' },
  { kind: 'metric', name: 'loss', type: 'number' }, { kind: 'metric', name: 'extra', type: 'number' }];

const model = () => modelOf(columns, rows);

const settle = () => new Promise(done => setTimeout(done, 300));

async function opened(): Promise<{ box: HTMLElement, view: any, summary: () => string }> {
  const box = document.createElement('div');
  document.body.replaceChildren(box);
  const view = mountExperiments({ model: model(), box, onPick: () => undefined });
  view.open(null, 'train');
  await settle();
  return { box, view, summary: () => box.querySelector('.labloom-exp-summary')!.textContent || '' };
}

function choose(box: HTMLElement, selector: string, value: string): void {
  const el = box.querySelector(selector) as HTMLInputElement | HTMLSelectElement;
  if (el instanceof HTMLInputElement && el.type === 'checkbox') el.checked = value === 'on';
  else el.value = value;
  el.dispatchEvent(new Event(el instanceof HTMLInputElement && el.type !== 'checkbox' ? 'input' : 'change'));
}

describe('the best row', () => {
  // Once a metric was picked, the direction stayed as it was for the next: auc's "highest"
  // kept for the loss picked after it starred the worst model (the highest loss) as the best.
  it("takes each metric's own direction, and keeps the one a user chose for a metric", async () => {
    const { box, view, summary } = await opened();
    const dir = () => (box.querySelector('select.labloom-exp-best-dir') as HTMLSelectElement).value;
    expect(summary()).toContain('best auc 0.61 at index 11');
    choose(box, 'select.labloom-exp-best-metric', 'metrics.loss');
    await settle();
    expect(dir()).toBe('lowest');
    expect(summary()).toContain('best loss 0.89 at index 11');
    // The user's own choice for auc, kept when they come back to it from loss.
    choose(box, 'select.labloom-exp-best-metric', 'metrics.auc');
    choose(box, 'select.labloom-exp-best-dir', 'lowest');
    choose(box, 'select.labloom-exp-best-metric', 'metrics.loss');
    await settle();
    expect(dir()).toBe('lowest');
    choose(box, 'select.labloom-exp-best-metric', 'metrics.auc');
    await settle();
    expect(dir()).toBe('lowest');
    expect(summary()).toContain('best auc 0.50 at index 0'); // as its column reads (0.61)
    view.destroy();
  });
});

describe('a filter naming no column', () => {
  // "acu>0.55" (a typo) was looked for as words: the table emptied with "0 of 12 match".
  it('says so in the summary', async () => {
    const { box, view, summary } = await opened();
    choose(box, 'input.labloom-exp-filter', 'acu>0.55 depth=1');
    await settle();
    expect(summary()).toContain('no column "acu": looked for as words');
    choose(box, 'input.labloom-exp-filter', 'auc>0.55 depth=1');
    await settle();
    expect(summary()).not.toContain('no column');
    expect(summary()).toContain('2 of 12 match the filter');
    view.destroy();
  });
});

describe('a group whose rows did not all log a metric', () => {
  // Grouped by depth, "extra" (logged by one seed of four) read "3" beside n = 4: as if each
  // seed had logged it.
  it('says how many of its rows logged none', async () => {
    const { box, view } = await opened();
    choose(box, ".labloom-exp-group input[value='params.depth']", 'on');
    await settle();
    const cells = (id: string) => Array.from(box.querySelectorAll(`.labloom-exp-td[data-column='${id}']`))
      .map(td => td.textContent);
    expect(cells('n')).toEqual(['4', '4', '4']);
    expect(cells('metrics.extra')).toEqual(['3 · 3 not logged', '3 · 3 not logged', '3 · 3 not logged']);
    expect(cells('metrics.auc')[0]).toBe('0.515 ± 0.013 (0.500–0.530)'); // all logged it
    view.destroy();
  });
});

describe('a view opened as the sweep began', () => {
  // Opened before any row had logged (or only a loss curve so far), the view kept what it
  // picked then: the chart's x stayed the index, the best metric and the y the loss, after
  // the params and the auc came. The user's own choices stay, "none" for colour too.
  it('picks its defaults again as columns come, and keeps what the user chose', async () => {
    let stage = 0;
    const growing = (i: number) => ({
      run_id: 'r', task_run_id: `r.${i}`, task: 'train', map_index: i, duration: 1, state: 'Running',
      params: { depth: i, seed: i % 2 },
      metrics: { loss: 1 - i / 10, ...(stage >= 2 ? { auc: 0.5 + i / 10 } : {}),
        ...(stage >= 3 ? { acc: 0.9 } : {}) }
    });
    const loss = { kind: 'metric', name: 'loss', type: 'number', steps: true };
    const columnsAt = () => (stage === 0 ? [] : [{ kind: 'param', name: 'depth', type: 'number' },
      { kind: 'param', name: 'seed', type: 'number' }, loss,
      ...(stage >= 2 ? [{ kind: 'metric', name: 'auc', type: 'number' }] : []),
      ...(stage >= 3 ? [{ kind: 'metric', name: 'acc', type: 'number' }] : [])]);
    const handlers: any[] = [];
    const live = {
      send: (msg: any) => setTimeout(() => {
        const now = stage === 0 ? [] : [0, 1, 2].map(growing);
        handlers.forEach(h => h({ event: 'experiments', req: msg.req, columns: columnsAt(),
          total: now.length, offset: 0, limit: msg.limit, sort: msg.sort, desc: msg.desc,
          next: null, rows: now, version: stage }));
      }, 0),
      on: (_: string, h: any) => handlers.push(h),
      off: () => undefined,
      get: () => null
    };
    const box = document.createElement('div');
    document.body.replaceChildren(box);
    const view = mountExperiments({ model: live, box, onPick: () => undefined, live: () => true });
    view.open(null, 'train');
    await settle();
    const value = (name: string) => (box.querySelector(`select.labloom-exp-${name}`) as HTMLSelectElement).value;
    const ticked = async (check: () => boolean) => {
      const end = Date.now() + 20000;
      while (!check() && Date.now() < end) {
        view.tick();
        await new Promise(done => setTimeout(done, 100));
      }
    };
    stage = 1;
    await ticked(() => value('x') === 'params.depth');
    expect(value('best-metric')).toBe('metrics.loss');
    stage = 2;
    await ticked(() => value('best-metric') === 'metrics.auc');
    expect([value('x'), value('y'), value('best-metric'), value('best-dir')]).toEqual(
      ['params.depth', 'metrics.auc', 'metrics.auc', 'highest']);
    choose(box, 'select.labloom-exp-x', 'params.seed');
    choose(box, 'select.labloom-exp-by', '');
    stage = 3;
    await ticked(() => Array.from((box.querySelector('select.labloom-exp-y') as HTMLSelectElement).options)
      .some(o => o.value === 'metrics.acc'));
    expect([value('x'), value('by'), value('y')]).toEqual(['params.seed', '', 'metrics.auc']);
    view.destroy();
  }, 60000);
});

describe('a param logged as None', () => {
  // max_depth=None (scikit-learn's "no limit") showed blank, as a param not logged does:
  // in the rows and in the group's key.
  it('reads None in its cell and its group, blank where it was not logged', async () => {
    const saved = rows.map(r => ({ ...r, params: { ...r.params } }));
    rows[0].params.depth = null;
    rows[1].params.depth = null;
    delete rows[2].params.depth;
    try {
      const { box, view } = await opened();
      const cells = () => Array.from(box.querySelectorAll(".labloom-exp-td[data-column='params.depth']"))
        .map(td => td.textContent);
      expect(cells().slice(0, 4)).toEqual(['None', 'None', '', '0']);
      choose(box, ".labloom-exp-group input[value='params.depth']", 'on');
      await settle();
      expect(cells()).toContain('None');
      view.destroy();
    } finally {
      rows.splice(0, rows.length, ...saved);
    }
  });
});
