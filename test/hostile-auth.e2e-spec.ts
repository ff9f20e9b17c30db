import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { OperationLock } from '../src/common/operation-lock';
import { makeBackup } from './helpers/recovery-fixtures';
import { ADMIN, API_KEY, createUser, startTestApp, type TestApp } from './helpers/test-app';

/** Issue 10, findings 6 (parallel logins) and 9 (a restore seen by anonymous callers). */
describe('Hostile callers: login limit and restore visibility (e2e)', () => {
  let t: TestApp;
  let base: string;

  beforeEach(async () => {
    t = await startTestApp();
    const server = t.app.getHttpServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterEach(async () => {
    await t?.close();
  });

  describe('login limit', () => {
    it('should let at most 5 of 50 parallel wrong logins be checked, the rest 429 with Retry-After', async () => {
      const responses = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          request(base)
            .post('/api/auth/login')
            .send({ username: i % 2 ? ADMIN.username : `nobody-${i}`, password: 'wrong-password' }),
        ),
      );
      const statuses = responses.map((r) => r.status);
      expect(statuses.filter((s) => s !== 401 && s !== 429)).toEqual([]);
      expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(5);
      expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(45);
      expect(responses.find((r) => r.status === 429)?.headers['retry-after']).toMatch(/^\d+$/);
      // The right password is refused too until the minute is over.
      await request(base).post('/api/auth/login').send(ADMIN).expect(429);
      const audit = await request(base).get('/api/audit?action=login_failed').set('x-api-key', API_KEY).expect(200);
      expect(audit.body.total).toBeLessThanOrEqual(5);
    });

    it('should not count successful logins, even in parallel', async () => {
      const ok = await Promise.all(Array.from({ length: 10 }, () => request(base).post('/api/auth/login').send(ADMIN)));
      expect(ok.map((r) => r.status)).toEqual(Array(10).fill(200));
      for (let i = 0; i < 5; i++) {
        await request(base)
          .post('/api/auth/login')
          .send({ ...ADMIN, password: 'wrong-password' })
          .expect(401);
      }
      await request(base).post('/api/auth/login').send(ADMIN).expect(429);
    });
  });

  describe('during a restore', () => {
    it('should answer anonymous POST and DELETE with 401, a viewer with 403, and only an admin with 503', async () => {
      const viewer = await createUser(t.http, 'watcher', 'viewer');
      const made = await makeBackup(t);
      const lock = t.app.get(OperationLock);
      let finish!: () => void;
      const restoring = lock.runExclusive('restore', () => new Promise<void>((resolve) => (finish = resolve)));
      try {
        while (lock.running !== 'restore') {
          await new Promise((resolve) => setImmediate(resolve));
        }
        for (const [method, url] of [
          ['post', '/api/backup'],
          ['delete', `/api/backup?name=${made.name}`],
          ['post', '/api/backup/restore'],
          ['put', '/api/settings'],
        ] as const) {
          const anonymous = await request(base)[method](url).send({});
          expect([method, url, anonymous.status, anonymous.body]).toEqual([
            method,
            url,
            401,
            { error: 'Authentication required' },
          ]);
          const wrongKey = await request(base)[method](url).set('x-api-key', 'not-the-key').send({});
          expect(wrongKey.status).toBe(401);
          const asViewer = await request(base)[method](url).set('Cookie', viewer.cookie).send({});
          expect(asViewer.status).toBe(403);
        }
        const admin = await request(base).post('/api/backup').set('x-api-key', API_KEY);
        expect(admin.status).toBe(503);
        expect(admin.headers['retry-after']).toMatch(/^\d+$/);
        // Reads go on.
        await request(base).get('/api/backup').set('x-api-key', API_KEY).expect(200);
      } finally {
        finish();
        await restoring;
      }
      await request(base).post('/api/backup').set('x-api-key', API_KEY).expect(200);
    });
  });
});
