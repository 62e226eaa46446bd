// The DAG panel of a map's child that left its map says so, in the title and a note with why.
import { leftMapNote, panelTitle } from '../paneltitle';

const WHY = 'left fit: its input was split again into 1 item at run.retry()';
const child = (extra: any) => ({
  node: 'map:fit', name: 'fit', kind: 'map', state: 'Completed',
  task_run: { id: 'r.2', name: 'fit', index: 2, state: 'Cancelled', message: '', ...extra }
});

describe('the panel of a child that left its map', () => {
  it('says so in the title, its why once, in the note', () => {
    const msg = child({ message: WHY, left_map: WHY });
    expect(panelTitle(msg, 'Completed')).toBe('fit[2] · Cancelled · left its map');
    expect(leftMapNote(msg.task_run)).toBe(
      'Left fit: its input was split again into 1 item at run.retry(). This task run is ' +
        'history: the map no longer counts it among its children.'
    );
  });

  it('keeps a message of its own beside it', () => {
    const msg = child({ state: 'Completed', message: 'done', left_map: WHY });
    expect(panelTitle(msg, 'Completed')).toBe('fit[2] · Completed · left its map · done');
  });

  it('leaves any other task run, and a node, as they were', () => {
    const msg = child({ message: 'boom', left_map: null });
    expect(panelTitle(msg, 'Completed')).toBe('fit[2] · Cancelled · boom');
    expect(leftMapNote(msg.task_run)).toBe('');
    expect(panelTitle({ ...msg, task_run: null }, '2 of 40 failed')).toBe('fit · 2 of 40 failed');
    expect(leftMapNote(null)).toBe('');
  });
});
