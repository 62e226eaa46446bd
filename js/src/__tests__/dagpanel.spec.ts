// The DAG renderer's panel on a model standing in for the kernel (or a Lab run tab's
// RestRunModel): what an empty log says, and Escape closing the innermost thing open.
jest.mock('@observablehq/plot', () => ({
  plot: () => document.createElementNS('http://www.w3.org/2000/svg', 'svg')
}));

import { render } from '../dag';
import { byIndex } from '../expdata';

const graph = {
  width: 200, height: 60,
  nodes: [{ id: 'm', name: 'train', kind: 'map', x: 100, y: 30, w: 180, h: 44 }],
  edges: []
};

function fakeModel() {
  const handlers = new Map<string, ((...args: any[]) => void)[]>();
  const sent: any[] = [];
  const values: Record<string, any> = { graph, states: {}, header: { run_id: 'r', state: 'Running' } };
  return {
    sent,
    get: (name: string) => values[name],
    on: (event: string, fn: any) => handlers.set(event, [...(handlers.get(event) || []), fn]),
    off: () => undefined,
    send: (msg: any) => sent.push(msg),
    say: (msg: any) => (handlers.get('msg:custom') || []).forEach(fn => fn(msg)),
    fire: (event: string) => (handlers.get(event) || []).forEach(fn => fn())
  };
}

function detail(state: string, lines: any[] = []) {
  return {
    event: 'detail', node: 'm', name: 'train', kind: 'map', state: 'Running',
    task_run: { id: 'm-3', name: 'train', index: 3, state, message: '' },
    lines, traceback: ''
  };
}

function setUp() {
  const el = document.createElement('div');
  document.body.replaceChildren(el);
  const model = fakeModel();
  const undo = render({ model, el });
  const empty = () => el.querySelector('.labloom-log-empty') as HTMLElement;
  const panel = () => el.querySelector('.labloom-panel') as HTMLElement;
  return { el, model, undo, empty, panel };
}

const escape = (target: Element) =>
  target.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape', bubbles: true, cancelable: true }));

describe('an empty log area', () => {
  // It drew nothing: the panel under the traceback was blank, as if still loading.
  it('says a task run has no log lines, and one not started that it has not', () => {
    const { model, empty, undo } = setUp();
    model.say(detail('Pending'));
    expect(empty().hidden).toBe(false);
    expect(empty().textContent).toBe('not started yet: no log lines');
    model.say(detail('Completed'));
    expect(empty().textContent).toBe('no log lines');
    model.say({ event: 'log', task_run: 'm-3', lines: [{ time: 0, level: 20, text: 'epoch 1' }] });
    expect(empty().hidden).toBe(true);
    model.say(detail('Completed', [{ time: 0, level: 20, text: 'epoch 1' }]));
    expect(empty().hidden).toBe(true);
    undo();
  });
});

describe('Escape', () => {
  // Escape closed nothing in the panel: the Experiments view, the task run's logs.
  it('closes the Experiments view with the focus in it, then the panel, then nothing', () => {
    const { el, model, panel, undo } = setUp();
    (el.querySelector('g.labloom-node') as any).dispatchEvent(new MouseEvent('click', { bubbles: true }));
    model.say(detail('Completed'));
    (el.querySelector('.labloom-experiments-open') as HTMLElement).click();
    const view = el.querySelector('.labloom-experiments') as HTMLElement;
    expect(view.hidden).toBe(false);
    const filter = view.querySelector('input.labloom-exp-filter') as HTMLElement;
    filter.focus();
    expect(escape(filter)).toBe(false); // taken: Lab does not see it
    expect(view.hidden).toBe(true);
    expect(panel().hidden).toBe(false);
    expect(document.activeElement).toBe(el.querySelector('.labloom-experiments-open'));

    expect(escape(document.activeElement!)).toBe(false);
    expect(panel().hidden).toBe(true);
    expect(model.sent[model.sent.length - 1]).toEqual({ event: 'select', node: null });
    expect(escape(el.querySelector('.labloom-header')!)).toBe(true); // nothing open: Lab's
    undo();
  });
});

describe('rows unsorted', () => {
  it('come by index within each run and task, whatever order they were logged in', () => {
    const row = (run: string, task: string, i: number | null) => ({ run_id: run, task, map_index: i });
    const logged = [row('a', 'train', 3), row('a', 'train', 0), row('a', 'prep', null),
      row('b', 'train', 1), row('a', 'train', 1), row('b', 'train', 0)];
    expect(byIndex(logged).map((r: any) => `${r.run_id}.${r.task}[${r.map_index}]`)).toEqual([
      'a.train[0]', 'a.train[1]', 'a.train[3]', 'a.prep[null]', 'b.train[0]', 'b.train[1]']);
  });
});

describe("a map's panel title", () => {
  // A sweep of 40 under allow_failure lost two children and the run Completed; the node said
  // "40/40 · 2 failed" while its panel's title said "train · Failed".
  it('counts the failed children as the node does, and follows the counts', () => {
    const { el, model, undo } = setUp();
    const values = { graph, states: { m: { state: 'Running', counts: { Completed: 30, Failed: 2 }, total: 40 } } };
    (model as any).get = (name: string) => (values as any)[name];
    const map = { event: 'detail', node: 'm', name: 'train', kind: 'map', state: 'Running', task_run: null, lines: [], traceback: '' };
    model.say(map);
    const title = () => (el.querySelector('.labloom-panel-title') as HTMLElement).textContent;
    expect(title()).toBe('train · Running');
    values.states = { m: { state: 'Failed', counts: { Completed: 38, Failed: 2 }, total: 40 } };
    model.fire('change:states'); // the counts changed, no new detail
    expect(title()).toBe('train · 2 of 40 failed');
    model.say({ ...map, state: 'Failed' });
    expect(title()).toBe('train · 2 of 40 failed');
    model.say(detail('Failed'));
    expect(title()).toBe('train[3] · Failed'); // a picked child says its own state
    undo();
  });

  it('says Failed when every child failed', () => {
    const { el, model, undo } = setUp();
    const values = { graph, states: { m: { state: 'Failed', counts: { Failed: 3 }, total: 3 } } };
    (model as any).get = (name: string) => (values as any)[name];
    model.say({ event: 'detail', node: 'm', name: 'train', kind: 'map', state: 'Failed', task_run: null, lines: [], traceback: '' });
    expect((el.querySelector('.labloom-panel-title') as HTMLElement).textContent).toBe('train · Failed');
    undo();
  });
});
