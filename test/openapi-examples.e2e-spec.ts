import request from 'supertest';
import { API_KEY, startTestApp, type TestApp } from './helpers/test-app';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../package.json') as { version: string };

type Media = { example?: unknown; examples?: Record<string, { value: unknown }> };
type Response = { description?: string; headers?: Record<string, unknown>; content?: Record<string, Media> };
type Doc = {
  info: { version: string };
  tags: Array<{ name: string }>;
  paths: Record<string, Record<string, { responses: Record<string, Response> }>>;
};

/** Swagger UI shows the real error bodies, success descriptions, the package's version, Backups first (#12 item 12). */
describe('OpenAPI examples (e2e)', () => {
  let t: TestApp;
  let doc: Doc;

  beforeAll(async () => {
    t = await startTestApp();
    doc = (await request(t.http).get('/api/docs-json').set('x-api-key', API_KEY).expect(200)).body as Doc;
  });

  afterAll(async () => {
    await t.close();
  });

  const bodies = (route: string, method: string, code: string): unknown[] => {
    const media = doc.paths[route][method].responses[code]?.content?.['application/json'];
    return media?.examples ? Object.values(media.examples).map((e) => e.value) : [media?.example];
  };

  it('should carry the version of package.json and list Backups first', () => {
    expect(doc.info.version).toBe(version);
    expect(doc.tags[0].name).toBe('Backups');
  });

  it('should show the real error bodies of 401, 403, 404, 429 and 503', () => {
    expect(bodies('/api/backup', 'get', '401')).toEqual([
      { error: 'Authentication required' },
      { error: 'Authentication required', reason: 'invalid_api_key', message: 'Invalid API key' },
      { error: 'Authentication required', reason: 'session_expired', message: 'Session expired: log in again' },
    ]);
    expect(bodies('/api/backup', 'get', '403')).toEqual([{ error: 'Requires admin role' }]);
    expect(bodies('/api/backup', 'post', '403')).toEqual(
      expect.arrayContaining([{ error: 'Requires admin role' }, { error: 'CSRF origin mismatch' }]),
    );
    expect(bodies('/api/backup/verify', 'post', '404')).toEqual([{ error: 'Backup not found' }]);
    expect(bodies('/api/auth/users/{id}', 'delete', '404')).toEqual([{ error: 'User not found' }]);
    expect(bodies('/api/backup', 'post', '429')).toEqual([
      { error: 'Rate limit exceeded: wait before trying again', retry_after_seconds: 42 },
    ]);
    expect(doc.paths['/api/backup'].post.responses['429'].headers).toHaveProperty('Retry-After');
    expect(doc.paths['/api/auth/login'].post.responses['429'].headers).toHaveProperty('Retry-After');
    expect(bodies('/api/backup/restore', 'post', '503')).toEqual([
      { error: 'A restore is in progress: try again shortly' },
    ]);
    expect(doc.paths['/api/settings'].put.responses['503'].headers).toHaveProperty('Retry-After');
  });

  it('should describe every success response', () => {
    const empty = Object.entries(doc.paths).flatMap(([route, ops]) =>
      Object.entries(ops).flatMap(([method, op]) =>
        Object.entries(op.responses)
          .filter(([code, response]) => code.startsWith('2') && !response.description)
          .map(([code]) => `${method} ${route} ${code}`),
      ),
    );
    expect(empty).toEqual([]);
  });
});
