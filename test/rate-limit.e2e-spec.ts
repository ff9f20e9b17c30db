import request from 'supertest';
import { ADMIN, startTestApp, withApiKey, type TestApp } from './helpers/test-app';

const MISSING = (i: number) => `mc-backup-2000-01-01_00-00-${String(i).padStart(2, '0')}.db`;

describe('Rate limits (e2e): the wait in the body, and bad input spends nothing', () => {
  let t: TestApp;

  beforeEach(async () => {
    t = await startTestApp();
  });

  afterEach(async () => {
    await t.close();
  });

  it('should give the wait of the backups limit in the 429 body, equal to Retry-After', async () => {
    for (let i = 0; i < 10; i++) {
      await withApiKey(t.http, 'delete', '/api/backup')
        .send({ name: MISSING(i) })
        .expect(404);
    }
    const blocked = await withApiKey(t.http, 'post', '/api/backup').expect(429);
    expect(blocked.body).toEqual({
      error: 'Rate limit exceeded: wait before trying again',
      retry_after_seconds: Number(blocked.headers['retry-after']),
    });
    expect(blocked.body.retry_after_seconds).toBeGreaterThan(0);
    expect(blocked.body.retry_after_seconds).toBeLessThanOrEqual(60);
  });

  it('should give the wait of the login throttle in the 429 body, equal to Retry-After', async () => {
    for (let i = 0; i < 5; i++) {
      await request(t.http).post('/api/auth/login').send({ username: ADMIN.username, password: 'wrong' }).expect(401);
    }
    const blocked = await request(t.http).post('/api/auth/login').send(ADMIN).expect(429);
    expect(blocked.body).toEqual({
      error: 'Too many failed login attempts: wait before trying again',
      retry_after_seconds: Number(blocked.headers['retry-after']),
    });
    expect(blocked.body.retry_after_seconds).toBeGreaterThan(0);
  });

  it('should not spend the backups budget on requests refused for their input', async () => {
    const refused: Array<[string, () => request.Test, number]> = [
      ['verify without a name', () => withApiKey(t.http, 'post', '/api/backup/verify').send({}), 400],
      ['restore of a path', () => withApiKey(t.http, 'post', '/api/backup/restore').send({ name: '../x.db' }), 400],
      ['delete of a bad name', () => withApiKey(t.http, 'delete', '/api/backup?name=..%2Fetc%2Fpasswd'), 400],
      ['an unknown task', () => withApiKey(t.http, 'post', '/api/scheduler').send({ task_id: 'reboot' }), 400],
      [
        'an unknown field',
        () => withApiKey(t.http, 'post', '/api/backup/verify').send({ name: MISSING(0), x: 1 }),
        400,
      ],
      [
        'an upload as text',
        () => withApiKey(t.http, 'post', '/api/backup/upload').set('Content-Type', 'text/plain').send('hello'),
        415,
      ],
    ];
    // Three rounds of six: eighteen refusals, far past the ten a minute.
    for (let round = 0; round < 3; round++) {
      for (const [what, send, status] of refused) {
        const response = await send();
        expect({ what, status: response.status }).toEqual({ what, status });
      }
    }
    // The whole budget is still there: ten requests that do reach the backups folder, then the eleventh is refused.
    const first = await withApiKey(t.http, 'delete', '/api/backup')
      .send({ name: MISSING(0) })
      .expect(404);
    expect(first.headers['ratelimit-remaining']).toBe('9');
    for (let i = 1; i < 10; i++) {
      await withApiKey(t.http, 'delete', '/api/backup')
        .send({ name: MISSING(i) })
        .expect(404);
    }
    await withApiKey(t.http, 'delete', '/api/backup')
      .send({ name: MISSING(10) })
      .expect(429);
  });

  it('should still count a request refused after it was looked at (a missing backup, a file that is no database)', async () => {
    await withApiKey(t.http, 'post', '/api/backup/verify')
      .send({ name: MISSING(1) })
      .expect(404);
    const upload = await withApiKey(t.http, 'post', '/api/backup/upload')
      .set('Content-Type', 'application/octet-stream')
      .send(Buffer.from('not a database, but it had to be written and read to know'))
      .expect(400);
    expect(upload.headers['ratelimit-remaining']).toBe('8');
  });
});
