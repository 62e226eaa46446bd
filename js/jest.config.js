// Unit tests of the view models and the renderer's plain modules (src/__tests__/*.spec.ts), in
// jsdom, compiled by ts-jest (the .js ones too), as jupyterlab/extension-template's jest setup does; run with `jlpm test` (and by pytest:
// tests/test_js_unit.py). The models import nothing from @jupyterlab, so nothing else needs
// transforming.
module.exports = {
  testEnvironment: 'jsdom',
  testRegex: 'src/__tests__/.*\\.spec\\.ts$',
  transform: {
    '^.+\\.(ts|js)$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  },
  moduleFileExtensions: ['ts', 'js', 'json']
};
