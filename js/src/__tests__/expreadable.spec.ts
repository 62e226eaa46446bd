// The Experiments view read as a user reads it (session 57): which columns vary, what a step
// metric's column holds, the charts' integer axes, the filter's example, names in the summary,
// grouped cells. Observable Plot is stood in for (it ships as ES modules, which these tests do
// not load): its chart is an <svg> carrying the options it was asked for.
jest.mock('@observablehq/plot', () => {
  const mark = (kind: string) => (data: any, options: any = {}) => ({ kind, data, options });
  return {
    plot: (options: any) =>
      Object.assign(document.createElementNS('http://www.w3.org/2000/svg', 'svg'), { options }),
    dot: mark('dot'), line: mark('line'), ruleX: mark('ruleX'), text: mark('text'), axisX: mark('axisX')
  };
});

import { mountExperiments } from '../experiments';
import { modelOf } from './expmodel';

const settle = () => new Promise(done => setTimeout(done, 300));

async function open(columns: any[], rows: any[]) {
  const box = document.createElement('div');
  document.body.replaceChildren(box);
  const view = mountExperiments({ model: modelOf(columns, rows), box, onPick: () => undefined });
  view.open(null, 'train');
  await settle();
  return { box, view };
}

const change = async (el: Element | null, value?: string) => {
  const input = el as HTMLInputElement;
  if (value === undefined) input.checked = !input.checked;
  else input.value = value;
  input.dispatchEvent(new Event('change'));
  await settle();
};

// A sweep of depths; children 3 and 7 failed before logging their metrics.
const sweep = [{ kind: 'param', name: 'depth', type: 'number' },
  { kind: 'metric', name: 'auc', type: 'number' },
  { kind: 'metric', name: 'fit_seconds', type: 'number' }];
const sweepRows = Array.from({ length: 8 }, (_, i) => {
  const failed = i === 3 || i === 7;
  return {
    run_id: 'r', task_run_id: `r.${i}`, task: 'train', map_index: i, duration: 1 + i,
    state: failed ? 'Failed' : 'Completed', params: { depth: [1, 2, 4, 8][i % 4] },
    metrics: failed ? {} : { auc: 0.8 + i / 100, fit_seconds: 0.6 }
  };
});

describe('only the columns that vary', () => {
  // fit_seconds is 0.6 in every row that logged it: the failed rows' missing value counted as
  // a second value, so it stayed, and the parallel coordinates drew a flat 0.6-0.6 axis.
  it('leaves out a column constant wherever it has a value', async () => {
    const { box, view } = await open(sweep, sweepRows);
    await change(box.querySelector('input.labloom-exp-vary'));
    const summary = box.querySelector('.labloom-exp-summary')!.textContent || '';
    expect(summary).toContain('columns hidden (task, fit_seconds)');
    await change(box.querySelector('select.labloom-exp-chart-kind'), 'parallel');
    const chart: any = box.querySelector('.labloom-exp-chart svg');
    const axes = chart.options.x.domain;
    expect(axes).toEqual(['depth', 'auc']);
    view.destroy();
  });
});

describe('a metric logged with steps', () => {
  // Its column showed the last step's value under the bare name "loss", read as the run's loss.
  it('says its column holds the last step, and is still filtered by its name', async () => {
    const columns = [{ kind: 'param', name: 'depth', type: 'number' },
      { kind: 'metric', name: 'loss', type: 'number', steps: true },
      { kind: 'metric', name: 'auc', type: 'number' }];
    const { box, view } = await open(columns, sweepRows.map(r => ({
      ...r, metrics: { auc: r.metrics.auc, loss: r.map_index / 10 } })));
    const head = box.querySelector(".labloom-exp-th[data-column='metrics.loss']")!;
    expect(head.textContent).toBe('loss (last step)');
    expect(head.getAttribute('title')).toContain('last step');
    expect(box.querySelector(".labloom-exp-th[data-column='metrics.auc']")!.textContent).toBe('auc');
    const filter = box.querySelector('input.labloom-exp-filter') as HTMLInputElement;
    filter.value = 'loss<0.25';
    filter.dispatchEvent(new Event('input'));
    await settle();
    expect(box.querySelectorAll('.labloom-exp-row').length).toBe(3);
    view.destroy();
  });
});

describe('a chart against an integer param', () => {
  // max_depth 1, 2, 4, 8 on a linear axis was ticked at 1.5, 2.5 ...: values no run had.
  it('places a few integers as points, more at integer ticks only', async () => {
    const { box, view } = await open(sweep, sweepRows);
    const chart: any = box.querySelector('.labloom-exp-chart svg');
    expect(chart.options.x).toMatchObject({ label: 'depth', type: 'point', domain: [1, 2, 4, 8] });
    view.destroy();
    const many = Array.from({ length: 40 }, (_, i) => ({ ...sweepRows[0], task_run_id: `r.${i}`,
      map_index: i, params: { depth: 3 + i * 2 }, metrics: { auc: i / 40 } }));
    const again = await open(sweep, many);
    const ticks = (again.box.querySelector('.labloom-exp-chart svg') as any).options.x.ticks;
    expect(ticks.length).toBeGreaterThan(3);
    expect(ticks.every(Number.isInteger)).toBe(true);
    expect(ticks[0]).toBeGreaterThanOrEqual(3);
    expect(ticks[ticks.length - 1]).toBeLessThanOrEqual(81);
    again.view.destroy();
  });

  it('keeps a linear axis for a param with fractions', async () => {
    const { box, view } = await open(sweep, sweepRows.map(r => ({ ...r, params: { depth: r.map_index / 4 } })));
    const chart: any = box.querySelector('.labloom-exp-chart svg');
    expect(chart.options.x.type).toBeUndefined();
    expect(chart.options.x.ticks).toBeUndefined();
    view.destroy();
  });
});

describe("the filter box's example", () => {
  // It named criterion=gini, a column this sweep does not have: typed as shown, the table emptied.
  it('names a metric and a param the view has, with values it has', async () => {
    const { box, view } = await open(sweep, sweepRows);
    const filter = box.querySelector('input.labloom-exp-filter') as HTMLInputElement;
    // The median auc and the best row's depth: typed as shown, it keeps that row.
    expect(filter.placeholder).toBe('filter: auc>0.82 depth=4 words');
    filter.value = 'auc>0.82 depth=4';
    filter.dispatchEvent(new Event('input'));
    await settle();
    const kept = Array.from(box.querySelectorAll(".labloom-exp-td[data-column='map_index']"));
    expect(kept.map(td => td.textContent)).toContain('6');
    view.destroy();
  });

  it('uses the best-by metric, "<" for a loss', async () => {
    const columns = [{ kind: 'param', name: 'depth', type: 'number' },
      { kind: 'metric', name: 'acc', type: 'number' }, { kind: 'metric', name: 'loss', type: 'number' }];
    const { box, view } = await open(columns, sweepRows.map(r => ({ ...r,
      metrics: { acc: r.map_index / 10, loss: 1 - r.map_index / 10 } })));
    const filter = box.querySelector('input.labloom-exp-filter') as HTMLInputElement;
    expect(filter.placeholder).toBe('filter: acc>0.3 depth=8 words');
    await change(box.querySelector('select.labloom-exp-best-metric'), 'metrics.loss');
    expect(filter.placeholder).toBe('filter: loss<0.7 depth=8 words');
    view.destroy();
  });

  it('quotes a name with a space', async () => {
    const columns = [{ kind: 'param', name: 'learning rate', type: 'number' }];
    const { box, view } = await open(columns, [{ ...sweepRows[0], params: { 'learning rate': 0.1 } }]);
    const filter = box.querySelector('input.labloom-exp-filter') as HTMLInputElement;
    expect(filter.placeholder).toBe('filter: "learning rate"=0.1 words');
    view.destroy();
  });
});

describe('a column name with a right-to-left override', () => {
  // The headers showed it escaped, the summary's hidden list and best metric raw: the override
  // turned the rest of the summary around ("best auc 0.9 at index 3" read backwards).
  it('is escaped in the summary and the controls as in the headers', async () => {
    const odd = 'depth\u202e';
    const named = [{ kind: 'param', name: odd, type: 'number' },
      { kind: 'param', name: 'seed', type: 'number' },
      { kind: 'metric', name: `auc\u202e`, type: 'number' }];
    const rows = sweepRows.map(r => ({ ...r, params: { [odd]: 3, seed: r.map_index },
      metrics: { 'auc\u202e': r.map_index / 10 } }));
    const { box, view } = await open(named, rows);
    await change(box.querySelector('input.labloom-exp-vary'));
    const summary = box.querySelector('.labloom-exp-summary')!.textContent || '';
    expect(summary).toContain('depth\\u202e)');
    expect(summary).toContain('best auc\\u202e 0.7');
    expect(summary).not.toContain('\u202e');
    const controls = Array.from(box.querySelectorAll('option, .labloom-exp-group-key'));
    expect(controls.map(el => el.textContent).join(' ')).not.toContain('\u202e');
    expect(controls.map(el => el.textContent).join(' ')).toContain('depth\\u202e');
    view.destroy();
  });
});

describe('a grouped cell', () => {
  // "0.6 ± 0 (0.6–0.6) · 2 not logged" was cut to "0.6 ± 0 (0.6–0.6) · 2 not …" in its 210 px
  // column, the rest in the tooltip only.
  it('has a column wide enough for its text at the cells\' monospace width', async () => {
    // depth 2: four rows, two of them failed (3 and 7) with no fit_seconds.
    const { box, view } = await open(sweep, sweepRows.map(r => ({ ...r, params: { depth: 1 + (r.map_index % 2) } })));
    await change(box.querySelector(".labloom-exp-group input[value='params.depth']"));
    const heads = Array.from(box.querySelectorAll('.labloom-exp-th')).map(th => th.getAttribute('data-column'));
    const widths = (box.querySelector('.labloom-exp-head') as HTMLElement).style.gridTemplateColumns
      .split(' ').map(w => parseFloat(w));
    const at = heads.indexOf('metrics.fit_seconds');
    const cells = Array.from(box.querySelectorAll(".labloom-exp-td[data-column='metrics.fit_seconds']"));
    const longest = Math.max(...cells.map(td => td.textContent!.length));
    expect(cells.map(td => td.textContent)).toContain('0.6 \u00b1 0.0 (0.6\u20130.6) \u00b7 2 not logged');
    expect(widths[at]).toBeGreaterThanOrEqual(longest * 7.8 + 12); // 13 px monospace, padding
    expect(cells.every(td => td.getAttribute('title') === td.textContent)).toBe(true);
    view.destroy();
  });
});

describe('a name with a right-to-left override in a chart', () => {
  // The table escaped it; the charts' axis labels, legend, dots' titles and text axes drew it
  // raw, turning the label round.
  it('is escaped in the labels, titles and text values Plot is given', async () => {
    const odd = 'model\u202e';
    const named = [{ kind: 'param', name: odd, type: 'string' }, { kind: 'param', name: 'depth', type: 'number' },
      { kind: 'metric', name: 'auc\u202e', type: 'number' }];
    const rows = sweepRows.map(r => ({ ...r, params: { [odd]: `tree\u202e${r.map_index % 2}`, depth: r.map_index },
      metrics: { 'auc\u202e': r.map_index / 10 } }));
    const { box, view } = await open(named, rows);
    await change(box.querySelector('select.labloom-exp-x'), `params.${odd}`);
    const chart: any = box.querySelector('.labloom-exp-chart svg');
    const dots = chart.options.marks[0].options;
    const shown = [chart.options.x.label, chart.options.y.label, chart.options.color.label,
      ...rows.map((r: any) => dots.x(r)), ...rows.map((r: any) => dots.title(r))];
    expect(shown.join(' ')).not.toContain('\u202e');
    expect(chart.options.x.label).toBe('model\\u202e');
    await change(box.querySelector('select.labloom-exp-chart-kind'), 'parallel');
    const parallel: any = box.querySelector('.labloom-exp-chart svg');
    expect(parallel.options.x.domain.join(' ')).not.toContain('\u202e');
    view.destroy();
  });
});
