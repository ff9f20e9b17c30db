import request from 'supertest';
import { ADMIN, API_KEY, loginCookie } from './helpers/test-app';
import { ObservabilityApp, startObservabilityApp } from './helpers/observability-app';

type Line = Record<string, unknown>;

describe('Structured logs (e2e)', () => {
  let t: ObservabilityApp;

  beforeAll(async () => {
    t = await startObservabilityApp({ LOG_LEVEL: 'info' });
  });

  afterAll(async () => {
    await t.close();
  });

  function requestLines(): Line[] {
    return t.logs.lines().filter((line) => typeof line.route === 'string' && typeof line.durationMs === 'number');
  }

  it('should write JSON lines only, each with a level and a time', () => {
    const lines = t.logs.lines();
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      expect(line).toEqual(expect.objectContaining({ level: expect.any(Number), time: expect.any(Number) }));
    }
  });

  it('should never log the password, the session token, the API key or a cookie', async () => {
    const cookie = await loginCookie(t.http);
    const sessionToken = cookie.split('=')[1];
    await request(t.http).get('/api/auth/me').set('Cookie', cookie).expect(200);
    await request(t.http).get('/api/backup').set('x-api-key', API_KEY).expect(200);
    await request(t.http).get('/api/backup').set('Authorization', `Bearer ${API_KEY}`).expect(200);
    await request(t.http).post('/api/auth/login').send({ username: ADMIN.username, password: 'wrong-password-1' });
    await request(t.http).post('/api/auth/logout').set('Cookie', cookie).expect(200);

    const text = t.logs.text();
    expect(text).toContain('/api/auth/login'); // the calls above were logged...
    for (const secret of [ADMIN.password, 'wrong-password-1', sessionToken, API_KEY, 'mc-session=']) {
      expect({ secret, found: text.includes(secret) }).toEqual({ secret, found: false }); // ...without secrets
    }
    expect(text).not.toMatch(/"(cookie|authorization|x-api-key|set-cookie)"/i);
  });

  it('should log each request once with id, method, route pattern, status, duration and user', async () => {
    const response = await request(t.http)
      .get('/api/audit?action=login&limit=5')
      .set('x-api-key', API_KEY)
      .set('X-Request-Id', 'trace-1234.abc')
      .expect(200);
    expect(response.headers['x-request-id']).toBe('trace-1234.abc');

    const mine = requestLines().filter((line) => line.reqId === 'trace-1234.abc');
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({
      reqId: 'trace-1234.abc',
      method: 'GET',
      route: '/api/audit',
      status: 200,
      user: 'api-key',
      level: 30,
    });
    expect(mine[0].durationMs).toEqual(expect.any(Number));
    expect(JSON.stringify(mine[0])).not.toContain('action=login'); // the pattern, not the URL with its query
  });

  it('should log the route pattern of parameterised routes and the cookie user', async () => {
    const cookie = await loginCookie(t.http);
    await request(t.http)
      .delete('/api/auth/users/99999')
      .set('Cookie', cookie)
      .set('X-Request-Id', 'del-1')
      .expect(404);
    const [line] = requestLines().filter((entry) => entry.reqId === 'del-1');
    expect(line).toMatchObject({
      method: 'DELETE',
      route: '/api/auth/users/:id',
      status: 404,
      user: 'admin',
      level: 40,
    });
  });

  it('should replace an unsafe X-Request-Id by a generated one and echo it', async () => {
    const response = await request(t.http).get('/api/health').set('X-Request-Id', 'bad id\twith "quotes"').expect(200);
    const id = response.headers['x-request-id'];
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const [line] = requestLines().filter((entry) => entry.reqId === id);
    expect(line).toMatchObject({ route: '/api/health', status: 200, user: null });
    const generated = await request(t.http).get('/api/health').expect(200);
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(generated.headers['x-request-id']).not.toBe(id);
  });

  it('should log 401s with no user, and unmatched routes (404) without their path', async () => {
    await request(t.http).get('/api/backup').set('X-Request-Id', 'anon-1').expect(401);
    await request(t.http).get('/api/nothing/here?secret=1').set('X-Request-Id', 'none-1').expect(404);
    const lines = requestLines();
    expect(lines.find((line) => line.reqId === 'anon-1')).toMatchObject({ status: 401, user: null, level: 40 });
    const unmatched = lines.find((line) => line.reqId === 'none-1');
    expect(unmatched?.route).toBe('(unmatched)');
    expect(JSON.stringify(unmatched)).not.toContain('secret=1');
  });

  it('should route the services’ Nest logs through pino with the request id, and log backup figures', async () => {
    const response = await request(t.http)
      .post('/api/backup')
      .set('x-api-key', API_KEY)
      .set('X-Request-Id', 'backup-1')
      .expect(200);
    const name = (response.body as { backup: { name: string } }).backup.name;
    const lines = t.logs.lines().filter((line) => line.reqId === 'backup-1');
    const serviceLine = lines.find((line) => line.context === 'BackupsService' && String(line.msg).includes(name));
    expect(serviceLine?.msg).toMatch(/bytes in \d+ ms \([\d.]+ MB\/s\)/);
    const event = lines.find((line) => line.event === 'backup_succeeded');
    expect(event).toMatchObject({
      context: 'OpsEvents',
      name,
      kind: 'manual',
      sizeBytes: expect.any(Number),
      durationMs: expect.any(Number),
      mbPerSecond: expect.any(Number),
    });
    expect(lines.filter((line) => line.route === '/api/backup')).toHaveLength(1);
  });
});
