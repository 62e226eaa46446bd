import { aggText, group } from '../expdata';
import { formatNumber, fullText, groupsFormat, numberFormat } from '../expnumbers';
import { rowCells } from '../exprows';

// A column of 350 AUCs read "0.9056" over "0.90346", each value at its own length: one format
// per column makes them read down by their digits.
const column = (values: any[]) => {
  const format = numberFormat(values, 'number');
  return values.map(v => formatNumber(format, v, 'number'));
};

describe("a column's numbers", () => {
  it('share their decimals, enough to show each at five significant digits', () => {
    expect(column([0.9056, 0.90346, 1])).toEqual(['0.90560', '0.90346', '1.00000']);
    expect(column([0.63, 0.6, 0.61])).toEqual(['0.63', '0.60', '0.61']);
    expect(column([1234.5678, 2.5])).toEqual(['1234.6', '2.5']);
  });

  it('take more decimals when two different values would read alike', () => {
    expect(column([0.1234561, 0.1234564])).toEqual(['0.1234561', '0.1234564']);
  });

  it('keep integers as integers, NaN and inf named, text as text', () => {
    expect(column([3, 10, 250000])).toEqual(['3', '10', '250000']);
    expect(column([0.5, 'NaN', 'Infinity', '-Infinity', null, undefined])).toEqual(
      ['0.5', 'NaN', 'inf', '-inf', '', '']);
    expect(column([1e-20, 3e-21])).toEqual(['1.0000e-20', '3.0000e-21']);
  });

  it('show a value that does not fit the format (paged in later) as it is', () => {
    const format = numberFormat([1, 2, 3], 'number');
    expect(formatNumber(format, 2.5, 'number')).toBe('2.5');
  });

  it('are in full in the title', () => {
    expect(fullText(0.123456789123, 'number')).toBe('0.123456789123');
    expect(fullText('NaN', 'number')).toBe('NaN');
  });

  it("are read so by the table's cells, a param None as None", () => {
    const auc = { id: 'metrics.auc', label: 'auc', kind: 'metric', type: 'number' };
    const depth = { id: 'params.depth', label: 'depth', kind: 'param', type: 'number' };
    const rows = [{ params: { depth: null }, metrics: { auc: 0.9056 } },
      { params: { depth: 3 }, metrics: { auc: 0.90346 } }];
    const { cell, title } = rowCells([depth, auc], rows);
    expect(rows.map(r => cell(r, auc))).toEqual(['0.90560', '0.90346']);
    expect(rows.map(r => cell(r, depth))).toEqual(['None', '3']);
    expect(title(rows[0], auc)).toBe('0.9056');
  });
});

describe("a group's params that were not grouped by", () => {
  // Grouped by depth, the seed (a setting, not a measurement) read "4.5 ± 3.0 (0.0–9.0)".
  const depth = { id: 'params.depth', label: 'depth', name: 'depth', kind: 'param', type: 'number' };
  const seed = { id: 'params.seed', label: 'seed', name: 'seed', kind: 'param', type: 'number' };
  const rate = { id: 'params.rate', label: 'rate', name: 'rate', kind: 'param', type: 'number' };
  const auc = { id: 'metrics.auc', label: 'auc', name: 'auc', kind: 'metric', type: 'number' };
  const rows = Array.from({ length: 10 }, (_, i) => ({
    task_run_id: `r.${i}`, params: { depth: 3, seed: i, rate: 0.1 }, metrics: { auc: 0.9 + i / 1000 }
  }));
  const [g] = group(rows, [depth], [depth, seed, rate, auc]);

  it('say which values they took, or the one value all took', () => {
    expect(aggText(g.agg['params.seed'], 'number')).toBe('0–9 · 10 values');
    expect(aggText(g.agg['params.rate'], 'number')).toBe('0.1');
  });

  it('name a None among them and the rows that logged none', () => {
    const some = [...rows.slice(0, 2), { ...rows[2], params: { depth: 3, seed: null } },
      { ...rows[3], params: { depth: 3 } }];
    const [h] = group(some, [depth], [depth, seed]);
    expect(aggText(h.agg['params.seed'], 'number')).toBe('0–1, None · 3 values · 1 not logged');
  });

  it('while the metrics stay mean ± std (min–max)', () => {
    expect(aggText(g.agg['metrics.auc'], 'number')).toBe('0.9045 ± 0.0030 (0.9000–0.9090)');
  });
});

describe("a grouped column's means and spreads", () => {
  // Each group read to its own std's second digit: "0.0878 ± 0.0099 (…)" over "0.136 ± 0.024 (…)".
  it('share the decimals of the widest spread', () => {
    const depth = { id: 'params.depth', label: 'depth', name: 'depth', kind: 'param', type: 'number' };
    const loss = { id: 'metrics.loss', label: 'loss', name: 'loss', kind: 'metric', type: 'number' };
    const values = [[2, 1 / 6], [2, 1 / 7], [2, 1 / 8], [2, 1 / 9], [6, 1 / 10], [6, 1 / 11], [6, 1 / 12], [6, 1 / 13]];
    const rows = values.map(([d, v], i) => ({ task_run_id: `r.${i}`, params: { depth: d }, metrics: { loss: v } }));
    const groups = group(rows, [depth], [depth, loss]);
    const format = groupsFormat(groups.map(g => g.agg['metrics.loss']), rows.map(r => r.metrics.loss), 'number');
    expect(groups.map(g => aggText(g.agg['metrics.loss'], 'number', v => formatNumber(format, v, 'number')))).toEqual(
      ['0.1364 ± 0.0240 (0.1111\u20130.1667)', '0.0878 ± 0.0099 (0.0769\u20130.1000)']);
    // No group with a spread: the column's own format ("1", not "1.000").
    expect(groupsFormat([{ n: 1, mean: 1, std: 0, min: 1, max: 1, nan: 0 }], [1, 1], 'number')).toEqual({ integers: true });
  });
});
