import { createChildList } from '../childlist';

// A map node's child list in the DAG's panel is sent again by the kernel whenever one of its
// children changed (up to ten times a second while the map runs). A browser fires no click when
// the element pressed left the page before the release, so a list replaced between press and
// release lost the click: the children must be updated in place.

function page(states: string[], pageNo = 0, node = 'm') {
  const children = states.map((state, i) => {
    const index = pageNo * 100 + i;
    return { id: `m-${index}`, index, state };
  });
  return { event: 'children', node, page: pageNo, pages: 3, total: 250, children };
}

function setUp() {
  const box = document.createElement('div');
  document.body.replaceChildren(box);
  const picked: [string, string][] = [];
  const paged: [string, number][] = [];
  const list = createChildList(box, {
    onPick: (node: string, taskRun: string) => picked.push([node, taskRun]),
    onPage: (node: string, p: number) => paged.push([node, p])
  });
  const child = (id: string) =>
    box.querySelector(`.labloom-child[data-task-run-id="${id}"]`) as HTMLElement;
  return { box, list, picked, paged, child };
}

describe("a map node's child list across the kernel's updates", () => {
  it('keeps each child in the page through an update, its state updated in place', () => {
    const { list, picked, child } = setUp();
    list.set(page(['Completed', 'Running', 'Running']));
    const pressed = child('m-1');
    pressed.focus();

    // The next update: child 1 failed meanwhile, child 2 completed.
    list.set(page(['Completed', 'Failed', 'Completed']));
    expect(child('m-1')).toBe(pressed);
    expect(pressed.isConnected).toBe(true);
    expect(pressed.getAttribute('data-state')).toBe('Failed');
    expect(pressed.textContent).toBe('[1] Failed');
    expect(child('m-2').getAttribute('data-state')).toBe('Completed');
    expect(document.activeElement).toBe(pressed); // a keyboard user keeps their place

    pressed.click();
    pressed.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
    expect(picked).toEqual([['m', 'm-1'], ['m', 'm-1']]);
  });

  it('keeps the pager and its buttons, which page from the page shown now', () => {
    const { box, list, paged, child } = setUp();
    list.set(page(['Running', 'Running']));
    const next = box.querySelector('button.labloom-page-next') as HTMLButtonElement;
    const prev = box.querySelector('button.labloom-page-prev') as HTMLButtonElement;
    expect(prev.disabled).toBe(true);
    // Named for a screen reader (the glyphs alone are read as quotation marks).
    expect([prev, next].map(b => b.getAttribute('aria-label'))).toEqual([
      'previous page of children',
      'next page of children'
    ]);
    list.set(page(['Completed', 'Running']));
    expect(box.querySelector('button.labloom-page-next')).toBe(next);
    next.click();
    expect(paged).toEqual([['m', 1]]);

    // The next page: other task runs, so other elements; the page's text and buttons follow.
    const first = child('m-0');
    list.set(page(['Running'], 1));
    expect(first.isConnected).toBe(false);
    expect(child('m-100').textContent).toBe('[100] Running');
    expect(box.querySelector('.labloom-page')!.getAttribute('data-page')).toBe('1');
    expect(box.querySelector('.labloom-page')!.textContent).toBe('page 2 of 3 · 250 task runs'); // not "runs": flow runs
    expect(prev.disabled).toBe(false);
    prev.click();
    expect(paged).toEqual([['m', 1], ['m', 0]]);
    expect(box.querySelectorAll('.labloom-child').length).toBe(1);
  });

  it('is emptied when a task is selected, and drawn afresh for the next map', () => {
    const { box, list, picked, child } = setUp();
    list.set(page(['Running']));
    list.clear();
    expect(box.children.length).toBe(0);
    list.set(page(['Completed', 'Failed'], 0, 'other'));
    expect(box.querySelectorAll('.labloom-child').length).toBe(2);
    child('m-1').click();
    expect(picked).toEqual([['other', 'm-1']]);
  });

  it("marks the child whose logs the panel shows, through the kernel's updates", () => {
    // Among a page of alike chips ("[7] Completed") nothing said which one a click opened.
    const { list, child } = setUp();
    list.set(page(['Completed', 'Failed', 'Running']));
    list.shown('m-1');
    const marked = () =>
      Array.from(document.querySelectorAll('.labloom-child-current')).map(e =>
        e.getAttribute('data-task-run-id')
      );
    expect(marked()).toEqual(['m-1']);
    expect(child('m-1').getAttribute('aria-current')).toBe('true');
    list.set(page(['Completed', 'Failed', 'Completed']));
    expect(marked()).toEqual(['m-1']);
    list.shown('m-2');
    expect(marked()).toEqual(['m-2']);
    expect(child('m-1').hasAttribute('aria-current')).toBe(false);
    list.shown(null);
    expect(marked()).toEqual([]);
  });
});
