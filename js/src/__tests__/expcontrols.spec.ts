import { LOWER_IS_BETTER, choose, curveColumns } from '../expcontrols';
const metric = (name: string, steps = false) => ({
  id: `metrics.${name}`, label: name, name, kind: 'metric', type: 'number', steps
});
const param = (name: string) => ({ id: `params.${name}`, label: name, name, kind: 'param', type: 'number', steps: false });

describe("the best row's default direction", () => {
  // A language model's sweep logged perplexity: the view starred the highest, its worst run,
  // as "best perplexity".
  it('is lowest for losses, errors and the usual lower-is-better scores', () => {
    const lower = ['loss', 'val_loss', 'error', 'rmse', 'rmsle', 'mape', 'perplexity', 'ppl',
      'val_ppl', 'nll', 'wer', 'test_wer', 'cer', 'fid', 'edit_distance', 'latency_ms', 'cost'];
    expect(lower.filter(name => !LOWER_IS_BETTER.test(name))).toEqual([]);
  });

  it('is highest for scores', () => {
    const higher = ['auc', 'accuracy', 'f1', 'bleu', 'map', 'power', 'answer_rate', 'fidelity',
      'precision', 'recall', 'r2'];
    expect(higher.filter(name => LOWER_IS_BETTER.test(name))).toEqual([]);
  });
});

describe("the Experiments view's default choices", () => {
  // acc is a curve (logged with a step each epoch), auc a final score: the best row is judged
  // by auc. The columns' marks alone say which are curves, in the cell's answers and the
  // server's pages (the Lab's run tab, the compare tab) alike.
  const all = [param('depth'), metric('acc', true), metric('auc'), metric('loss', true)];

  it("judges by a final score, the curves known by their columns' marks", () => {
    const ui: any = {};
    choose(ui, all, LOWER_IS_BETTER);
    expect(ui.best).toBe('metrics.auc');
    // acc unmarked (a final score too, or a curve only a forgotten attempt logged): first.
    const once: any = {};
    choose(once, [param('depth'), metric('acc'), metric('auc'), metric('loss', true)], LOWER_IS_BETTER);
    expect(once.best).toBe('metrics.acc');
  });

  it('offers step curves of the marked metrics only, every metric when none is marked', () => {
    const ui: any = {};
    expect(choose(ui, all, LOWER_IS_BETTER).curved.map((c: any) => c.name)).toEqual(['acc', 'loss']);
    expect(ui.curve).toBe('metrics.acc');
    const unmarked = [param('depth'), metric('auc'), metric('loss')];
    expect(choose({}, unmarked, LOWER_IS_BETTER).curved.map((c: any) => c.name)).toEqual(['auc', 'loss']);
  });

  it("in the compare tab, colours and groups by run: last night's rows against today's", () => {
    // Only params were offered: two runs' dots (and curves) could not be told apart, nor
    // each run's rows aggregated (mean auc per run).
    const run = { id: 'run_id', label: 'run', kind: 'fixed', type: 'string' };
    const ui: any = {};
    const { keys } = choose(ui, [run, ...all], LOWER_IS_BETTER);
    expect(ui.by).toBe('run_id');
    expect(keys.map((c: any) => c.id)).toEqual(['run_id', 'params.depth']);
    const single: any = {};
    expect(choose(single, all, LOWER_IS_BETTER).keys.map((c: any) => c.id)).toEqual(['params.depth']);
    expect(single.by).toBe('');  // depth is the x axis: no other param to colour by
  });

  it('names the curves a chart of a stepless metric points to: the marked metrics', () => {
    expect(curveColumns(all).map((c: any) => c.name)).toEqual(['acc', 'loss']);
    expect(curveColumns([param('depth'), metric('auc')])).toEqual([]);
  });
});

describe('the default choices of a view opened before the columns came', () => {
  // Chosen once, from the columns then (none, or a loss curve only), they stayed: the chart's
  // x the index, the best metric the loss, after the params and the auc came.
  it('are chosen again as columns come; what the user chose is kept', () => {
    const index = { id: 'map_index', label: 'index', kind: 'fixed', type: 'number' };
    const ui: any = { chosen: {} };
    choose(ui, [index], LOWER_IS_BETTER);
    expect(ui.x).toBe('map_index');
    choose(ui, [index, param('depth'), metric('loss', true)], LOWER_IS_BETTER);
    expect([ui.x, ui.best]).toEqual(['params.depth', 'metrics.loss']);
    choose(ui, [index, param('depth'), metric('loss', true), metric('auc')], LOWER_IS_BETTER);
    expect([ui.x, ui.y, ui.best]).toEqual(['params.depth', 'metrics.auc', 'metrics.auc']);
    ui.x = 'map_index'; ui.by = ''; ui.chosen = { x: true, by: true };
    choose(ui, [index, param('depth'), param('seed'), metric('loss', true), metric('auc')], LOWER_IS_BETTER);
    expect([ui.x, ui.by]).toEqual(['map_index', '']);
  });
});
