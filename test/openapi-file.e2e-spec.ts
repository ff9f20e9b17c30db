import * as fs from 'node:fs';
import * as path from 'node:path';
import request from 'supertest';
import { DEFAULT_OPENAPI_FILE, serializeOpenApi, summarizeDifference } from '../src/openapi';
import { startTestApp, type TestApp } from './helpers/test-app';

/**
 * The committed openapi.json is the document the app serves (ts-jest runs the same Swagger plugin as nest build),
 * so a DTO or route change without `npm run openapi` fails here as well as in CI's `npm run openapi:check`.
 */
describe('openapi.json (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp();
  });

  afterAll(async () => {
    await t.close();
  });

  it('should equal the document the app serves at /api/docs-json', async () => {
    const served = serializeOpenApi((await request(t.http).get('/api/docs-json').expect(200)).body);
    const shown = path.relative(process.cwd(), DEFAULT_OPENAPI_FILE);
    expect(fs.existsSync(DEFAULT_OPENAPI_FILE) ? '' : `${shown} is missing: run npm run openapi`).toBe('');
    const committed = fs.readFileSync(DEFAULT_OPENAPI_FILE, 'utf8');
    const drift =
      committed === served
        ? []
        : [`${shown} is out of date; run npm run openapi`, ...summarizeDifference(committed, served)];
    expect(drift).toEqual([]);
  });

  it('should hold no machine-specific values', () => {
    const committed = fs.readFileSync(DEFAULT_OPENAPI_FILE, 'utf8');
    expect(committed).not.toMatch(/\/tmp\/|mc-openapi-|mc-e2e-|\/work\/|\/home\//);
  });
});
