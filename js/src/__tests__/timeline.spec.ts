// The timeline's bars of children that left their map (TaskRunLeftMap): kept, but marked, in
// the hover text, the summary and the key, the same in the Lab run tab and the cell widget.
jest.mock('@observablehq/plot', () => ({
  plot: () => document.createElementNS('http://www.w3.org/2000/svg', 'svg'),
  barX: () => null
}));

import { barRows, bucketPieces, drawTimeline, drawnRows, summaryText } from '../timeline';

const bar = (id: string, name: string, state: string, left = false) => ({
  lane: 0, id, name, state, start: 0, end: 0.5, ...(left ? { left: true } : {})
});

const data = {
  run: 'r', state: 'Completed', lanes: ['MainThread'], total: 3, unstarted: 0, left: 2,
  start: 10, end: 11, mode: 'bars', buckets: null,
  bars: [
    bar('r.0', 'fit[0]', 'Completed'),
    bar('r.1', 'fit[1]', 'Cancelled', true),
    bar('r.2', 'fit[2]', 'Failed', true)
  ]
};

describe('children that left their map on the timeline', () => {
  it('say so on hover, and only they', () => {
    const titles = barRows(data).map((r: any) => r.title);
    expect(titles[0]).toBe('fit[0] · Completed · 500 ms (at 0 ms)');
    expect(titles[1]).toBe('fit[1] · Cancelled · left its map · 500 ms (at 0 ms)');
    expect(titles[2].startsWith('fit[2] · Failed · left its map')).toBe(true);
  });

  it('are counted in the summary and named in the key', () => {
    expect(summaryText(data)).toBe(
      "3 task runs on 1 lane over 1.0 s; 2 left their map (faded bars: history, outside " +
        "the map's counts)."
    );
    const box = document.createElement('div');
    drawTimeline(box, data, ['Completed', 'Failed', 'Cancelled']);
    const key = Array.from(box.querySelectorAll('.labloom-timeline-key-item'), k => k.textContent);
    expect(key).toEqual(['Completed', 'Failed', 'Cancelled', 'left its map']);
  });

  it('leave a timeline without them as it was', () => {
    const plain = { ...data, total: 1, left: 0, bars: [data.bars[0]] };
    expect(summaryText(plain)).toBe('1 task run on 1 lane over 1.0 s.');
    const box = document.createElement('div');
    drawTimeline(box, plain, ['Completed']);
    expect(box.querySelector('.labloom-timeline-key-left')).toBeNull();
  });
});

// Past 3,000 task runs: a bucket counts the children that left apart from their state's.
const buckets = {
  ...data, mode: 'buckets', bars: [], total: 4000, left: 200,
  buckets: {
    width: 2, count: 1,
    cells: [
      { lane: 0, bucket: 0, counts: { Completed: 30 }, busy: { Completed: 1.5 },
        left_counts: { Completed: 10 }, left_busy: { Completed: 0.5 } },
      { lane: 1, bucket: 0, counts: { Failed: 1 }, busy: { Failed: 1 } }
    ]
  }
};

describe('children that left their map in buckets', () => {
  it('are a faded piece of their bucket, counted apart on hover', () => {
    const pieces = bucketPieces(buckets).map((p: any) => [p.state, p.start, p.end, !!p.left]);
    expect(pieces).toEqual([
      ['Completed', 0, 1.5, false], ['Completed', 1.5, 2, true], ['Failed', 0, 1, false]
    ]);
    const [first, , other] = bucketPieces(buckets).map((p: any) => p.title);
    expect(first).toBe('0 ms–2.0 s: 30 Completed; left their map: 10 Completed; busy 100%');
    expect(other).toBe('0 ms–2.0 s: 1 Failed; busy 50%');
  });

  it('are counted in the summary and named in the key', () => {
    expect(summaryText(buckets)).toContain(
      "; 200 left their map (the faded part of a bucket: history, outside the map's counts)."
    );
    const box = document.createElement('div');
    drawTimeline(box, buckets, ['Completed', 'Failed']);
    const key = Array.from(box.querySelectorAll('.labloom-timeline-key-item'), k => k.textContent);
    expect(key).toEqual(['Completed', 'Failed', 'left its map']);
  });
});

describe('a quick task run on the timeline', () => {
  const quick = { lane: 0, id: 'r.q', name: 'ping', state: 'Completed', start: 1, end: 1.01 };
  const slow = { lane: 0, id: 'r.s', name: 'wait', state: 'Completed', start: 1.02, end: 60 };

  it('is drawn at least the minimum width, its hover text keeping its real time', () => {
    const rows = drawnRows(barRows({ bars: [quick, slow] }), 0.5);
    expect(rows.map((r: any) => r.name)).toEqual(['wait', 'ping']); // the quick one drawn on top
    expect(rows[1].end).toBe(1.5);
    expect(rows[1].title).toBe('ping · Completed · 10 ms (at 1.0 s)');
    expect(rows[0].end).toBe(60); // a bar wider than the minimum is drawn as it is
  });
});
