import { createTable } from '../exptable';

// The Experiments table redraws its rows on every live reload (once a second while a sweep
// runs) and on every scroll. A browser fires no click when the element pressed left the page
// before the release, so a redraw that replaced the rows between press and release lost the
// click (a user's, or a test's under load): rows must be updated in place.
const columns = [
  { id: 'map_index', label: 'index', kind: 'fixed', type: 'number' },
  { id: 'state', label: 'state', kind: 'fixed', type: 'text' }
];

function viewOf(rows: any[], cols = columns) {
  return {
    columns: cols, count: rows.length, rowAt: (i: number) => rows[i] ?? null,
    cell: (row: any, c: any) => String(row[c.id] ?? ''), keyOf: (row: any) => row.task_run_id,
    best: null, need: () => undefined
  };
}

const run = (index: number, state: string) => ({ task_run_id: `r.${index}`, map_index: index, state });

function setUp() {
  const box = document.createElement('div');
  document.body.replaceChildren(box);
  const picked: any[] = [];
  const sorts: any[] = [];
  const table = createTable(box, (column: any) => sorts.push(column), (row: any) => picked.push(row));
  const rowEl = (key: string) => box.querySelector(`.labloom-exp-row[data-key="${key}"]`) as HTMLElement;
  return { box, table, picked, sorts, rowEl };
}

describe("the Experiments table's rows across redraws", () => {
  it('keeps each row and its cells in the page through a live reload, updated in place', () => {
    const { table, picked, rowEl } = setUp();
    table.set(viewOf([run(0, 'Completed'), run(1, 'Running')]));
    const pressed = rowEl('r.1');
    const cell = pressed.querySelector("[data-column='state']");
    pressed.focus();

    // The next reload: new row objects, one task run failed meanwhile.
    table.set(viewOf([run(0, 'Completed'), run(1, 'Failed')]));
    expect(rowEl('r.1')).toBe(pressed);
    expect(pressed.isConnected).toBe(true);
    expect(pressed.querySelector("[data-column='state']")).toBe(cell);
    expect(cell!.textContent).toBe('Failed');
    expect(pressed.getAttribute('data-state')).toBe('Failed');
    expect(document.activeElement).toBe(pressed); // a keyboard user keeps their place

    // The click picks what the row shows now.
    pressed.click();
    expect(picked.map((r) => r.state)).toEqual(['Failed']);
  });

  it('keeps the rows through a redraw on scrolling, and moves them only when the order changes', () => {
    const { box, table, picked, rowEl } = setUp();
    table.set(viewOf([run(0, 'Completed'), run(1, 'Failed'), run(2, 'Completed')]));
    const kept = [0, 1, 2].map((i) => rowEl(`r.${i}`));
    table.redraw();
    [0, 1, 2].forEach((i) => expect(rowEl(`r.${i}`)).toBe(kept[i])); // the same elements

    // Sorted the other way: the same elements, in the new order, each at its new place.
    table.set(viewOf([run(2, 'Completed'), run(1, 'Failed'), run(0, 'Completed')]));
    const shown = Array.from(box.querySelectorAll('.labloom-exp-row'));
    [2, 1, 0].forEach((k, i) => expect(shown[i]).toBe(kept[k]));
    expect(shown.map((el) => el.getAttribute('data-pos'))).toEqual(['0', '1', '2']);
    expect((kept[2] as HTMLElement).style.top).toBe('0px');

    // A row no longer shown leaves the page; a new one comes in.
    table.set(viewOf([run(1, 'Failed'), run(3, 'Running')]));
    expect(kept[0].isConnected).toBe(false);
    expect(rowEl('r.3').getAttribute('data-state')).toBe('Running');
    rowEl('r.3').dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
    expect(picked.map((r) => r.task_run_id)).toEqual(['r.3']);
  });

  it('redraws a row from scratch when the columns change, and a placeholder row picks nothing', () => {
    const { box, table, picked, rowEl } = setUp();
    table.set(viewOf([run(0, 'Completed')]));
    const extra = [...columns, { id: 'metrics.auc', label: 'auc', kind: 'metric', type: 'number' }];
    table.set(viewOf([{ ...run(0, 'Completed'), 'metrics.auc': 0.5 }], extra));
    const cells = Array.from(rowEl('r.0').querySelectorAll('.labloom-exp-td'));
    expect(cells.map((c) => c.getAttribute('data-column'))).toEqual(['map_index', 'state', 'metrics.auc']);
    expect(cells.map((c) => c.textContent)).toEqual(['0', 'Completed', '0.5']);

    // Not loaded yet (a big run's page still on its way): a placeholder, no key, no pick.
    table.set({ ...viewOf([]), count: 1 });
    const loading = box.querySelector('.labloom-exp-row') as HTMLElement;
    expect(loading.classList.contains('labloom-exp-loading')).toBe(true);
    expect(loading.hasAttribute('data-key')).toBe(false);
    expect(loading.textContent).toBe('…');
    loading.click();
    expect(picked).toEqual([]);
  });

  it('keeps the header cells too: a sort click across a live reload sorts', () => {
    const { box, table, sorts } = setUp();
    table.set(viewOf([run(0, 'Running')]));
    const header = box.querySelector(".labloom-exp-th[data-column='state']") as HTMLElement;
    table.set({ ...viewOf([run(0, 'Completed')]), sort: 'state', desc: true } as any);
    expect(box.querySelector(".labloom-exp-th[data-column='state']")).toBe(header);
    expect(header.getAttribute('aria-sort')).toBe('descending');
    expect(header.textContent).toBe('state ▼');
    header.click();
    expect(sorts.map((c) => c.id)).toEqual(['state']);
  });
});

describe('text that would reorder the screen', () => {
  // A param value (or name) holding a right-to-left override read backwards in the table,
  // while the run tab's names and log lines showed it escaped.
  it('shows bidirectional controls written out, in cells and headers', () => {
    const { box, table } = setUp();
    const note = { id: 'params.n\u202eote', label: 'n\u202eote', kind: 'param', type: 'text' };
    table.set(viewOf([{ task_run_id: 'r.0', map_index: 0, state: 'ok', 'params.n\u202eote': 'total: \u202e0001' }],
      [...columns, note]));
    const cell = box.querySelector('.labloom-exp-row [role="cell"]:last-child') as HTMLElement;
    expect(cell.textContent).toBe('total: \\u202e0001');
    expect(box.textContent).not.toContain('\u202e');
  });
});
