// The run tab's parameters fact: a 40-entry grid was cut mid-line at the row's fixed height.
import { shortParameters, shortValue, showParameters } from '../paramsummary';

const grid = Array.from({ length: 40 }, (_, i) => ({ max_depth: 1 + (i % 4), min_samples_leaf: 1, seed: i }));

describe('the parameters fact', () => {
  it('says a long value by its kind and size, a short one as it is', () => {
    expect(shortParameters({ grid, folds: 5 })).toBe('grid: list of 40 items, folds: 5');
    expect(shortValue({ a: 'x'.repeat(50) })).toBe('dict of 1 key');
    expect(shortValue('y'.repeat(41))).toBe('text of 41 characters');
    expect(shortValue({ __type__: 'builtins.list', __len__: 200000, __over__: 5 }))
      .toBe('list of 200000 items (kept as a summary)');
    expect(shortParameters({ n: 6 })).toBeNull();
  });

  it('shows the short form, which opens to the whole value as text, and stays open', () => {
    const dd = document.createElement('dd');
    showParameters(dd, { n: 6 });
    expect(dd.textContent).toBe('{"n":6}');
    const params = { grid, note: '<b>bold</b>' };
    showParameters(dd, params);
    const details = dd.querySelector('details') as HTMLDetailsElement;
    expect(details.open).toBe(false);
    expect(dd.querySelector('summary')!.textContent).toBe('grid: list of 40 items, note: "<b>bold</b>"');
    const whole = dd.querySelector('.labloom-params-whole') as HTMLElement;
    expect(JSON.parse(whole.textContent || '')).toEqual(params);
    expect(dd.querySelector('b')).toBeNull(); // text, not HTML
    details.open = true;
    showParameters(dd, { ...params, grid: grid.slice(0, 39) }); // an update: patched in place
    expect(dd.querySelector('details')).toBe(details);
    expect(details.open).toBe(true);
    expect(dd.querySelector('summary')!.textContent).toContain('list of 39 items');
  });
});
