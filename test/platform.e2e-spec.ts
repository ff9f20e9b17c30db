import request from 'supertest';
import { API_KEY, startTestApp, TestApp } from './helpers/test-app';

describe('Platform: errors, health, docs (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp();
  });

  afterAll(async () => {
    await t.close();
  });

  it('should answer unknown routes with a JSON 404 that does not echo the path', async () => {
    const response = await request(t.http).get('/api/no/such/route').set('x-api-key', API_KEY).expect(404);
    expect(response.body).toEqual({ error: 'Not found' });
    expect(response.headers['content-type']).toMatch(/json/);
  });

  it('should answer a malformed JSON body with 400 without quoting it back', async () => {
    const response = await request(t.http)
      .post('/api/auth/login')
      .set('Content-Type', 'application/json')
      .send('{"username": "admin", oops')
      .expect(400);
    expect(response.body).toEqual({ error: 'Malformed JSON body' });
  });

  it('should answer an oversized body with 413', async () => {
    const response = await request(t.http)
      .post('/api/auth/login')
      .set('Content-Type', 'application/json')
      .send(JSON.stringify({ username: 'a'.repeat(400_000), password: 'x' }))
      .expect(413);
    expect(response.body).toEqual({ error: 'Request body too large' });
  });

  it('should never put a stack or an absolute path in an error body', async () => {
    const bodies = await Promise.all([
      request(t.http).get('/api/audit?limit=abc').set('x-api-key', API_KEY),
      request(t.http).delete('/api/auth/users/abc').set('x-api-key', API_KEY),
      request(t.http).post('/api/auth/login').set('Content-Type', 'application/json').send('{'),
    ]);
    for (const response of bodies) {
      const text = JSON.stringify(response.body);
      expect(text).not.toMatch(/ at |\.ts:|\.js:|\/work\/|\/tmp\//);
      expect(response.body).toHaveProperty('error');
    }
  });

  it('should report health without authentication', async () => {
    await request(t.http)
      .get('/api/health')
      .expect(200)
      .expect((response) => {
        expect(response.body.status).toBe('ok');
        expect(response.body.checks.database.status).toBe('up');
      });
  });

  it('should serve Swagger UI and an OpenAPI document with both security schemes and response types', async () => {
    const ui = await request(t.http).get('/api/docs/').expect(200);
    expect(ui.text).toContain('swagger-ui');
    const doc = (await request(t.http).get('/api/docs-json').expect(200)).body;
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['api-key', 'bearer', 'mc-session']);
    for (const [path, operations] of Object.entries(
      doc.paths as Record<string, Record<string, { summary?: string; responses: Record<string, unknown> }>>,
    )) {
      for (const [method, operation] of Object.entries(operations)) {
        expect({ route: `${method} ${path}`, summary: typeof operation.summary }).toEqual({
          route: `${method} ${path}`,
          summary: 'string',
        });
        const success = Object.keys(operation.responses).find((code) => code.startsWith('2'));
        expect({ route: `${method} ${path}`, success }).toEqual({
          route: `${method} ${path}`,
          success: expect.any(String),
        });
      }
    }
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/api/auth/login', '/api/auth/users', '/api/settings', '/api/audit', '/api/health']),
    );
  });
});
