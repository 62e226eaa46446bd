import { aggText, columnsOf, filterRows, group, groupValue, sortRows, text } from '../expdata';

const param = (name: string, type = 'number') => ({
  id: `params.${name}`, label: name, name, kind: 'param', type
});
const metric = (name: string) => ({
  id: `metrics.${name}`, label: name, name, kind: 'metric', type: 'number'
});
const row = (i: number, depth: any, auc: number) => ({
  run_id: 'r', task_run_id: `r.${i}`, map_index: i, params: { depth }, metrics: { auc }
});

describe('group-by in the Experiments view', () => {
  // Last night's run logged depth 3 (a number), today's "3" (read from a config file): the
  // table shows both as 3, the filter depth=3 keeps both, and grouping made two groups "3".
  it('puts values that read the same in one group', () => {
    const depth = param('depth', 'mixed');
    const auc = metric('auc');
    const rows = [row(0, 3, 0.5), row(1, '3', 0.7), row(2, 4, 0.9), row(3, '4', 0.1), row(4, null, 0.2)];
    const groups = group(rows, [depth], [depth, auc]);
    expect(groups.map(g => g.n)).toEqual([2, 2, 1]);
    expect(groups.map(g => groupValue(g, depth))).toEqual([3, 4, null]);
    expect(groupValue(groups[0], auc)).toBeCloseTo(0.6);
  });

  it('keeps close settings apart, though the table rounds them alike', () => {
    const lr = param('lr');
    const groups = group([row(0, 0.0001, 0.5), row(1, 0.000100001, 0.7)].map(r => ({
      ...r, params: { lr: r.params.depth } })), [lr], [lr]);
    expect(groups.map(g => g.n)).toEqual([1, 1]);
  });
});

describe('a group whose rows hold NaN', () => {
  // Seeds grouped: one diverged (auc NaN) read as the others' mean with nothing said, and a
  // setting where every seed diverged showed an empty cell, as if it had logged nothing.
  const depth = param('depth');
  const auc = metric('auc');
  const rows = [row(0, 3, 0.5), row(1, 3, 0.7), row(2, 3, NaN), row(3, 4, NaN), row(4, 4, NaN),
    row(5, 5, 0.9)].map(r => ({ ...r, metrics: { auc: Number.isNaN(r.metrics.auc) ? 'NaN' : r.metrics.auc } }));
  const cells = group(rows, [depth], [depth, auc]).map(g => aggText(g.agg['metrics.auc'], 'number'));

  it('says how many of its values were NaN', () => {
    expect(cells[0]).toBe('0.60 ± 0.14 (0.50\u20130.70) · 1 NaN');
  });

  it('shows NaN when all of them were, not an empty cell', () => {
    expect(cells[1]).toBe('NaN');
    expect(groupValue(group(rows, [depth], [depth, auc])[1], auc)).toBeNaN();
  });

  it('shows a lone value as it is', () => {
    expect(cells[2]).toBe('0.9');
  });
});

describe('a group\'s mean and spread', () => {
  // Five digits of a std and as many of its mean cut the cell: "0.93333 ± 0.0034436 (0.929…".
  it('reads to the std\'s second significant digit', () => {
    const depth = param('depth');
    const auc = metric('auc');
    const rows = [0.9290, 0.9333, 0.9377].map((v, i) => row(i, 3, v));
    expect(aggText(group(rows, [depth], [depth, auc])[0].agg['metrics.auc'], 'number')).toBe(
      '0.9333 ± 0.0044 (0.9290\u20130.9377)');
    const same = [5, 5].map((v, i) => row(i, 3, v));
    expect(aggText(group(same, [depth], [depth, auc])[0].agg['metrics.auc'], 'number')).toBe(
      '5 ± 0 (5\u20135)');
    // Three equal losses: their sum's float noise made a std of 3e-17, read to 12 digits.
    const equal = [0.2, 0.2, 0.2].map((v, i) => row(i, 3, v));
    expect(aggText(group(equal, [depth], [depth, auc])[0].agg['metrics.auc'], 'number')).toBe(
      '0.2 ± 0 (0.2\u20130.2)');
  });
});

describe('a group of rows with a bool metric', () => {
  // Seeds grouped by depth: converged (true or false) vanished from the grouped table.
  it('says how many of its rows were true', () => {
    const depth = param('depth');
    const converged = { ...metric('converged'), type: 'bool' };
    const rows = [row(0, 3, 0), row(1, 3, 0), row(2, 3, 0), row(3, 4, 0)].map((r, i) => ({
      ...r, metrics: { converged: i !== 1 } }));
    const groups = group(rows, [depth], [depth, converged]);
    expect(groups.map(g => aggText(g.agg['metrics.converged'], 'bool'))).toEqual(
      ['2 of 3 true', '1 of 1 true']);
    expect(groupValue(groups[0], converged)).toBeCloseTo(2 / 3);
  });
});

describe('a group of rows with a text column', () => {
  // Grouped by depth, a criterion that varied within the groups (and the task runs' states)
  // vanished from the grouped table: text was not aggregated.
  it('says which values it holds, most common first', () => {
    const depth = param('depth');
    const criterion = param('criterion', 'string');
    const state = { id: 'state', label: 'state', kind: 'fixed', type: 'string' };
    const rows = [row(0, 3, 0), row(1, 3, 0), row(2, 3, 0), row(3, 4, 0), row(4, 5, 0)].map(
      (r, i) => ({ ...r, params: { ...r.params, criterion: ['gini', 'entropy', 'gini', 'gini', null][i] },
                   state: i === 2 ? 'Failed' : 'Completed' }));
    const groups = group(rows, [depth], [depth, criterion, state]);
    expect(groups.map(g => aggText(g.agg['params.criterion'], 'string'))).toEqual(
      ['2 values: gini ×2, entropy ×1', 'gini', '']);
    expect(aggText(groups[0].agg.state, 'string')).toBe('2 values: Completed ×2, Failed ×1');
    expect(groups.map(g => groupValue(g, criterion))).toEqual(['gini', 'gini', null]);
  });
});

describe('sorting in the Experiments view', () => {
  // Up to 5,000 rows sort in the browser, more on the server (core/experiments.order, which the
  // CLI, run.experiments() and pandas share): text sorted by locale here (a, B, b, Z) came in
  // another order there (B, Z, a, b), and a live run's table reordered as it grew past 5,000.
  it('orders text as the server does, by code point', () => {
    const model = param('model', 'string');
    const names = ['vit', 'ResNet50', 'efficientnet', 'Bert', 'ünï', 'bert', 'Zeta', 'x\uFB01', 'x🧪'];
    const rows = names.map((name, i) => ({ ...row(i, null, 0), params: { model: name } }));
    const sorted = sortRows(rows, model, false).map((r: any) => r.params.model);
    expect(sorted).toEqual(['Bert', 'ResNet50', 'Zeta', 'bert', 'efficientnet', 'vit', 'x\uFB01', 'x🧪', 'ünï']);
    const down = sortRows(rows, model, true).map((r: any) => r.params.model);
    expect(down).toEqual([...sorted].reverse());
  });
});

describe('the filter', () => {
  // A param named "learning rate" could not be named (terms split at every space), nor a
  // value "random forest": double quotes hold the spaces, as the server's filter reads them.
  const lr = param('learning rate');
  const model = param('model', 'string');
  const auc = metric('auc');
  const rows = [0.1, 0.01, 0.001].map((rate, i) => ({
    ...row(i, 0, i / 10),
    params: { 'learning rate': rate, model: i ? 'random forest' : 'tree' }
  }));
  const kept = (query: string) => filterRows(rows, [lr, model, auc], query).map((r: any) => r.map_index);

  it('names a column and a value with spaces in double quotes', () => {
    expect(kept('"learning rate">0.005')).toEqual([0, 1]);
    expect(kept('model="random forest" auc>0.15')).toEqual([2]);
    expect(kept('"random forest"')).toEqual([1, 2]);
  });

  it('reads unquoted terms as before', () => {
    expect(kept('auc>=0.1 model=tree')).toEqual([]);
    expect(kept('model=tree')).toEqual([0]);
    expect(kept('forest')).toEqual([1, 2]);
    expect(kept('  ')).toEqual([0, 1, 2]);
  });

  it('reads a param logged as None as the table shows it, "None"', () => {
    // max_depth=None (no limit) shows "None", but the filter read it blank: "depth=None"
    // matched nothing and "depth=" kept it with the rows that never logged a depth.
    const depth = param('depth', 'number');
    const logged = [row(0, null, 0.5), row(1, 3, 0.6), { ...row(2, 0, 0.7), params: {} }];
    const keep = (query: string) => filterRows(logged, [depth, auc], query).map((r: any) => r.map_index);
    expect(keep('depth=None')).toEqual([0]);
    expect(keep('depth=')).toEqual([2]);
    expect(keep('depth!=None')).toEqual([1, 2]);
    expect(keep('none')).toEqual([0]);
  });
});

describe('a lone surrogate in the Experiments view', () => {
  // A file name that is not UTF-8 (os.listdir's caf\udce9.csv) comes in the REST answer as
  // JSON's escape: JSON.parse gives the lone half, which the page drew as U+FFFD.
  it('is shown escaped, in a cell and in a column name, as the run parameters are', () => {
    const name = 'caf\udce9.csv';
    expect(text(name, 'string')).toBe('caf\\udce9.csv');
    expect(text('\ud83d\ude00 ok', 'string')).toBe('\ud83d\ude00 ok'); // a pair is a character
    expect(text('a\ud83d', 'string')).toBe('a\\ud83d');
    const columns = columnsOf({ columns: [{ kind: 'param', name: `file ${name}`, type: 'number' }] });
    expect(columns[columns.length - 1]).toMatchObject({ label: 'file caf\\udce9.csv', id: `params.file ${name}` });
  });
});
