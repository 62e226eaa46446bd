// The Experiments view's charts, with Observable Plot stood in for (it ships as ES modules,
// which these tests do not load): what each chart asks Plot to draw.
jest.mock('@observablehq/plot', () => {
  const mark = (kind: string) => (data: any, options: any = {}) => ({ kind, data, options });
  return {
    plot: (options: any) => ({ options }),
    dot: mark('dot'), line: mark('line'), ruleX: mark('ruleX'), text: mark('text'), axisX: mark('axisX')
  };
});

import { curves, parallel, scatter } from '../expcharts';

const column = (kind: string, name: string) => ({
  id: `${kind}s.${name}`, label: name, name, kind, type: 'number'
});
const depth = column('param', 'depth');
const loss = column('metric', 'loss');
const auc = column('metric', 'auc');
const row = (i: number, lossValue: any, aucValue: any) => ({
  run_id: 'r', task_run_id: `r.${i}`, map_index: i, params: { depth: i },
  metrics: { loss: lossValue, auc: aucValue }
});
const box = document.createElement('div');

describe('parallel coordinates', () => {
  // A diverged run (loss NaN) was drawn straight from depth to auc, crossing the loss axis
  // where a run with that loss would: a value it never had.
  it('breaks a row\'s line at an axis where its value is NaN, inf or missing', () => {
    const rows = [row(0, 0.5, 0.9), row(1, 'NaN', 0.8), row(2, 'Infinity', 0.7),
      row(3, null, 0.6), row(4, 0.1, 0.5)];
    const chart: any = parallel(box, rows, { dims: [depth, loss, auc], y: auc, best: [] });
    const lines = chart.options.marks.find((m: any) => m.kind === 'line');
    for (const i of [1, 2, 3]) {
      const points = lines.data.filter((p: any) => p.row === i);
      expect(points.map((p: any) => p.dim)).toEqual(['depth', 'loss', 'auc']);
      expect(Number.isNaN(points[1].at)).toBe(true); // a gap in its line, not a value
    }
    const whole = lines.data.filter((p: any) => p.row === 0);
    expect(whole.every((p: any) => Number.isFinite(p.at))).toBe(true);
  });
});

describe('metric against a param', () => {
  // Rows whose metric is NaN or inf have no place on the axis: said under the chart, rather
  // than dots silently missing (350 rows, 348 dots). A row without the metric (failed, or
  // not there yet) is not drawn either, as the table shows it: without one.
  it('says how many rows it could not draw, and why', () => {
    const rows = [row(0, 1, 0.9), row(1, 1, 'NaN'), row(2, 1, 'Infinity'), row(3, 1, '-Infinity'),
      row(4, 1, null)];
    const chart: any = scatter(box, rows, { x: depth, y: auc, by: null, best: [],
      columns: [depth, auc] });
    expect(chart.options.marks[0].data.length).toBe(1);
    expect(chart.options.caption).toBe('3 rows not drawn: auc is NaN (1), inf (1), -inf (1)');
  });

  // max_depth=None (no limit: often the best trees) has no place on a number axis: its rows
  // went missing from the chart without a word; against a text param, "None" is a tick.
  it('says how many rows it could not draw for a param logged as None, and names None', () => {
    const rows: any[] = [row(0, 1, 0.9), row(1, 1, 0.95), row(2, 1, 0.8)];
    rows[1].params.depth = null;
    const chart: any = scatter(box, rows, { x: depth, y: auc, by: null, best: [],
      columns: [depth, auc] });
    expect(chart.options.marks[0].data.length).toBe(2);
    expect(chart.options.caption).toBe('1 row not drawn: depth is None (1)');
    const features = { id: 'params.features', label: 'features', name: 'features', kind: 'param', type: 'string' };
    rows.forEach((r: any, i) => { r.params.features = i ? 'sqrt' : null; });
    const byText: any = scatter(box, rows, { x: features, y: auc, by: features, best: [],
      columns: [features, auc] });
    const dots = byText.options.marks[0];
    expect(dots.data.map((r: any) => dots.options.x(r))).toEqual(['None', 'sqrt', 'sqrt']);
    expect(dots.data.map((r: any) => dots.options.fill(r))).toEqual(['None', 'sqrt', 'sqrt']);
    expect(byText.options.caption).toBeUndefined();
  });

  it('says nothing when every row is drawn', () => {
    const chart: any = scatter(box, [row(0, 1, 0.9)], { x: depth, y: auc, by: null,
      best: [], columns: [depth, auc] });
    expect(chart.options.caption).toBeUndefined();
  });
});

describe('step curves', () => {
  // A loss that diverged (NaN from step 2 on, or inf) was left out: its line went on across
  // the gap, or just ended, as if the run had stopped.
  it('breaks a line at its NaN and inf points, and says how many', () => {
    const rows = [row(0, 1, 0.9), row(1, 1, 0.8)];
    const points = [[0, 0, 1], [0, 1, 'NaN'], [0, 2, 0.5], [1, 0, 1], [1, 1, 'Infinity'],
      [1, 2, 'NaN']].map(([i, step, value]) => ({ task_run_id: `r.${i}`, task: 'train', step, value }));
    const { chart, drawn }: any = curves(box, { points }, rows, { by: null, best: [], label: 'loss' });
    const line = chart.options.marks[0].data;
    expect(line.map((p: any) => p.step)).toEqual([0, 1, 2, 0, 1, 2]);
    expect(line.filter((p: any) => Number.isNaN(p.value)).length).toBe(3);
    expect(drawn).toBe(6); // NaN points only: a chart, not "no step points"
    expect(chart.options.caption).toBe('3 points not drawn: loss is NaN (2), inf (1), in 2 rows');
  });
});

describe('colour by a param of a few numbers', () => {
  // n_estimators 50, 100, 200: the legend read 100, 200, 50 (the order of their texts).
  it('orders the legend as numbers', () => {
    const trees = column('param', 'trees');
    const rows = [200, 50, 100, 50].map((n, i) => ({ ...row(i, 1, 0.9), params: { depth: i, trees: n } }));
    const chart: any = scatter(box, rows, { x: depth, y: auc, by: trees, best: [],
      columns: [depth, auc, trees] });
    expect(chart.options.color.domain).toEqual(['50', '100', '200']);
  });
});
