import { curvePaths, mergeCurves } from '../comparecurves';

describe("the compare tab's step curves", () => {
  it("asks each run for its own task runs among those shown", () => {
    expect(curvePaths(['aaa', 'bbb', 'ccc'], 'loss', ['aaa.1', 'bbb.2', 'aaa.10'])).toEqual([
      'runs/aaa/experiments/curves?metric=loss&task_runs=aaa.1%2Caaa.10',
      'runs/bbb/experiments/curves?metric=loss&task_runs=bbb.2'
    ]);
  });

  it('asks every run for every curve when the view names no task runs', () => {
    expect(curvePaths(['aaa', 'bbb'], 'a b', null)).toEqual([
      'runs/aaa/experiments/curves?metric=a+b',
      'runs/bbb/experiments/curves?metric=a+b'
    ]);
  });

  it("puts the runs' points in one answer", () => {
    const one = { metric: 'loss', total: 2, truncated: false, points: [{ task_run_id: 'aaa.1', step: 0 }, { task_run_id: 'aaa.1', step: 1 }] };
    const two = { metric: 'loss', total: 30000, truncated: true, points: [{ task_run_id: 'bbb.2', step: 0 }] };
    expect(mergeCurves('loss', [one, two])).toEqual({
      metric: 'loss',
      total: 30002,
      truncated: true,
      points: [...one.points, ...two.points]
    });
    expect(mergeCurves('loss', [])).toEqual({ metric: 'loss', total: 0, truncated: false, points: [] });
  });
});
