import { deletedBefore } from '../deletecut';

describe('deletedBefore', () => {
  it('reads the runs deleted before the store went away from the error body', () => {
    const error = Object.assign(new Error('[labloom] deleted before …'), {
      body: { message: 'm', deleted: ['a1', 'b2'], cut_off: ['c3'], not_tried: 4 }
    });
    expect(deletedBefore(error)).toEqual(['a1', 'b2']);
  });

  it('names none for an error without them (a 503 before any batch, the network)', () => {
    expect(deletedBefore(new Error('the Jupyter server does not answer'))).toEqual([]);
    expect(deletedBefore(Object.assign(new Error('x'), { body: 'not json' }))).toEqual([]);
    expect(deletedBefore(Object.assign(new Error('x'), { body: { deleted: 'a1' } }))).toEqual([]);
    expect(deletedBefore(null)).toEqual([]);
  });
});
