import {
  IFlowForm,
  initialValues,
  launchableLabel,
  memoryKey,
  payload,
  rememberable
} from '../launchmodel';

const FORM: IFlowForm = {
  flow: 'tables',
  description: '',
  target: '/work/etl.py:tables',
  schedule: null,
  params: [
    { name: 'n', kind: 'int', type: 'int', required: true, optional: false, default: null },
    { name: 'label', kind: 'str', type: 'str', required: false, optional: false, default: 'daily' },
    {
      name: 'mode',
      kind: 'choice',
      type: "Literal['fast', 'full']",
      required: false,
      optional: false,
      default: 'fast',
      choices: ['fast', 'full']
    },
    { name: 'rows', kind: 'json', type: 'list[int]', required: false, optional: false, default: '[1, 2]' },
    { name: 'token', kind: 'secret', type: 'Secret', required: false, optional: true, default: null },
    { name: 'dry', kind: 'bool', type: 'bool', required: false, optional: false, default: null }
  ]
};

describe('the launch form model', () => {
  it('starts from the defaults, a checkbox unchecked', () => {
    expect(initialValues(FORM)).toEqual({
      n: '',
      label: 'daily',
      mode: 'fast',
      rows: '[1, 2]',
      token: '',
      dry: 'false'
    });
  });

  it('starts from what was remembered, but never a secret', () => {
    const values = initialValues(FORM, { n: '3', token: 'hunter2', label: 'x' });
    expect(values.n).toBe('3');
    expect(values.label).toBe('x');
    expect(values.token).toBe('');
  });

  it('sends what was typed and leaves empty fields to the defaults', () => {
    const values = { ...initialValues(FORM), n: 'abc', rows: '' };
    // "abc" goes as typed: the server refuses it with the CLI's reason
    expect(payload(FORM, values)).toEqual({
      n: 'abc',
      label: 'daily',
      mode: 'fast',
      dry: 'false'
    });
  });

  it('remembers everything but secrets', () => {
    const values = { ...initialValues(FORM), n: '3', token: 'hunter2' };
    const kept = rememberable(FORM, values);
    expect(kept).not.toHaveProperty('token');
    expect(JSON.stringify(kept)).not.toContain('hunter2');
    expect(kept.n).toBe('3');
  });

  it('keys memory by schedule or target, and names flows for the chooser', () => {
    expect(memoryKey(FORM)).toBe('labloom:launch:/work/etl.py:tables');
    expect(memoryKey({ ...FORM, schedule: 'nightly' })).toBe('labloom:launch:schedule:nightly');
    expect(
      launchableLabel({ target: '/work/etl.py:tables', flow: 'tables', schedule: null, last_run: 1 })
    ).toBe('tables (etl.py)');
    expect(
      launchableLabel({ target: '/work/etl.py:tables', flow: 'tables', schedule: 'nightly', last_run: null })
    ).toBe('nightly (schedule of tables)');
  });
});
