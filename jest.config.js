/**
 * Unit specs sit beside the code; end-to-end specs live in test/. `npm test` runs both.
 * The Swagger CLI plugin runs under ts-jest too, so the OpenAPI document the tests check is the one
 * `nest build` produces (DTO properties and response types come from the plugin).
 */
const swaggerPlugin = { path: require('path').join(__dirname, 'test/swagger-plugin.transformer.js') };
const common = {
  moduleFileExtensions: ['js', 'json', 'ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { diagnostics: false, astTransformers: { before: [swaggerPlugin] } }],
  },
  testEnvironment: 'node',
};
module.exports = {
  projects: [
    { ...common, displayName: 'unit', rootDir: 'src', testRegex: '.*\\.spec\\.ts$' },
    { ...common, displayName: 'e2e', rootDir: '.', testRegex: 'test/.*\\.e2e-spec\\.ts$', testTimeout: 60000 },
  ],
};
