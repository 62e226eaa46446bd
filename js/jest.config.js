// Unit tests of the view models (src/__tests__/*.spec.ts), in jsdom, compiled by ts-jest, as
// jupyterlab/extension-template's jest setup does; run with `jlpm test` (and by pytest:
// tests/test_js_unit.py). The models import nothing from @jupyterlab, so nothing else needs
// transforming.
module.exports = {
  testEnvironment: 'jsdom',
  testRegex: 'src/__tests__/.*\\.spec\\.ts$',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  },
  moduleFileExtensions: ['ts', 'js', 'json']
};
