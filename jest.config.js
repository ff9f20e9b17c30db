/**
 * Unit specs sit beside the code; end-to-end specs live in test/. `npm test` runs both.
 * The Swagger CLI plugin runs under ts-jest too, so the OpenAPI document the tests check is the one
 * `nest build` produces (DTO properties and response types come from the plugin); test/ts-transform.js gives the
 * plugin's files a type checker and transpiles the rest file by file.
 */
/**
 * age-encryption and its @noble/@scure dependencies ship only ES modules. Node 20.20 require()s them natively
 * (the built service and CLI), but Jest's own module loader cannot before Node 24.9, so tests compile them
 * to CommonJS.
 */
const ESM_PACKAGES = ['age-encryption', '@noble', '@scure'];
const common = {
  moduleFileExtensions: ['js', 'json', 'ts'],
  transform: {
    '^.+\\.ts$': require('path').join(__dirname, 'test/ts-transform.js'),
    // Only those ESM packages: the project's own .js files (the Swagger plugin recipe, the test environment) stay
    // as they are.
    [`/node_modules/(${ESM_PACKAGES.join('|')})/.+\\.js$`]: [
      'ts-jest',
      { diagnostics: false, tsconfig: { allowJs: true, module: 'commonjs', target: 'es2022', isolatedModules: true } },
    ],
  },
  transformIgnorePatterns: [`/node_modules/(?!(${ESM_PACKAGES.join('|')})/)`],
  // Node, plus: the app's logs during a test are printed only when that test fails (test/jest-environment.js).
  testEnvironment: require('path').join(__dirname, 'test/jest-environment.js'),
  // Jest's runtime with a V8 code cache for the modules every test file compiles again (test/jest-runtime.js).
  runtime: require('path').join(__dirname, 'test/jest-runtime.js'),
};
/**
 * Jest reads `testTimeout` only at the top level (a project-level key is silently ignored), so the e2e budget is
 * set here for every project; unit specs finish in milliseconds and never come near it. Sized for a loaded
 * 2-core machine: some recovery tests take 4-5 s on an idle one.
 */
module.exports = {
  testTimeout: 120000,
  projects: [
    { ...common, displayName: 'unit', rootDir: 'src', testRegex: '.*\\.spec\\.ts$' },
    {
      ...common,
      displayName: 'e2e',
      rootDir: '.',
      testRegex: 'test/.*\\.e2e-spec\\.ts$',
      // Fails any test in which this process opens the live database outside SQLite or loses its locks on it.
      setupFilesAfterEnv: ['<rootDir>/test/helpers/live-db-tripwire.ts'],
      // One build of dist/ for every suite that runs the compiled service or CLI (and only when e2e suites run).
      globalSetup: '<rootDir>/test/global-setup.js',
    },
  ],
};
