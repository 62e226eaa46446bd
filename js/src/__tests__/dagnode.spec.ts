// A map node's line under its name, drawn by the DAG renderer from the states the kernel (or a
// Lab run tab's model) sends.
jest.mock('@observablehq/plot', () => ({
  plot: () => document.createElementNS('http://www.w3.org/2000/svg', 'svg')
}));

import { seconds } from '../api';
import { render } from '../dag';

declare const require: (id: string) => any; // a second copy of the module, as a second bundle holds

const graph = {
  width: 200, height: 60,
  nodes: [{ id: 'm', name: 'train', kind: 'map', x: 100, y: 30, w: 180, h: 44 }],
  edges: []
};

function drawn(info: any): string {
  const el = document.createElement('div');
  document.body.replaceChildren(el);
  const values: Record<string, any> = { graph, states: { m: info }, header: { run_id: 'r', state: 'Running' } };
  const model = { get: (name: string) => values[name], on: () => undefined, off: () => undefined, send: () => undefined };
  const undo = render({ model, el });
  const text = el.querySelector('g.labloom-node .labloom-node-sub')!.textContent || '';
  undo();
  return text;
}

describe("a map node's progress line", () => {
  // A sweep of 40 under allow_failure lost two children: its red box said "40/40 · Failed",
  // read as all forty failed.
  it('counts the failed children once it ended with some, not all, failed', () => {
    expect(drawn({ state: 'Failed', counts: { Completed: 38, Failed: 2 }, total: 40 })).toBe('40/40 · 2 failed');
  });

  it('says the state while it runs, and when none or every child failed', () => {
    expect(drawn({ state: 'Running', counts: { Completed: 19, Failed: 1, Running: 4 }, total: 40 }))
      .toBe('20/40 · Running');
    expect(drawn({ state: 'Running', counts: { Completed: 6, Running: 4 }, total: 40 })).toBe('6/40 · Running');
    expect(drawn({ state: 'Failed', counts: { Failed: 3 }, total: 3 })).toBe('3/3 · Failed');
  });
});

describe('arrow heads', () => {
  // dag.js is loaded twice in one Lab page (the cell widget's bundle, the Lab extension's):
  // both copies named their first drawing's marker "labloom-arrow-1", and a run tab beside
  // the notebook pointed its edges at the cell's marker, in a hidden tab: no arrow heads.
  it('point at a marker of their own drawing when two copies of the module draw', () => {
    const edged = {
      width: 300, height: 60, edges: [{ source: 'a', target: 'b', points: [[0, 0], [10, 10]] }],
      nodes: [{ id: 'a', name: 'a', kind: 'task', x: 50, y: 30, w: 80, h: 44 },
        { id: 'b', name: 'b', kind: 'task', x: 200, y: 30, w: 80, h: 44 }]
    };
    const markers: string[] = [];
    for (let i = 0; i < 2; i++) {
      jest.isolateModules(() => {
        const { render: draw } = require('../dag');
        const el = document.createElement('div');
        const values: Record<string, any> = { graph: edged, states: {}, header: { run_id: 'r', state: 'Running' } };
        draw({ model: { get: (n: string) => values[n], on: () => undefined, off: () => undefined,
          send: () => undefined }, el });
        const id = el.querySelector('marker')!.id;
        expect(el.querySelector('path.labloom-edge')!.getAttribute('marker-end')).toBe(`url(#${id})`);
        markers.push(id);
      });
    }
    expect(markers[0]).not.toBe(markers[1]);
  });
});

describe("a run's duration", () => {
  // A run of 13.6 s: its tab's header said 0:13 (dag.js), the details above it and its Flows
  // panel row 0:14 (api.ts seconds).
  it('reads the same in the DAG header as in the run details and the Flows panel', () => {
    const el = document.createElement('div');
    document.body.replaceChildren(el);
    const values: Record<string, any> = { graph, states: {},
      header: { run_id: 'r', state: 'Completed', elapsed: 13.6, counts: { Completed: 1 } } };
    const undo = render({ model: { get: (n: string) => values[n], on: () => undefined,
      off: () => undefined, send: () => undefined }, el });
    expect(el.querySelector('.labloom-elapsed')!.textContent).toBe('0:13');
    expect(seconds(13.6)).toBe('0:13');
    undo();
  });
});
