import { deletedBefore, filesNotDeleted } from '../deletecut';

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

describe('filesNotDeleted', () => {
  it("says why a delete's result files stayed: the first reason and how many more", () => {
    const left =
      '3 result file(s) of the deleted runs not deleted: … `labloom delete --files-left` …';
    const result = { deleted: ['a1'], result_files: { deleted: 0, errors: [left] } };
    expect(filesNotDeleted(result)).toBe(left);
    const two = {
      result_files: { errors: ['/r/x.pkl: PermissionError', '/r/y.pkl: PermissionError'] }
    };
    expect(filesNotDeleted(two)).toBe('/r/x.pkl: PermissionError (and 1 more)');
  });

  it('says nothing when every file went, or the answer has no errors', () => {
    expect(filesNotDeleted({ result_files: { deleted: 2, errors: [] } })).toBe('');
    expect(filesNotDeleted({ deleted: [] })).toBe('');
    expect(filesNotDeleted(null)).toBe('');
  });
});
