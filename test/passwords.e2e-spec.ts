import { statSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import request from 'supertest';
import { startObservabilityApp } from './helpers/observability-app';
import { ADMIN, API_KEY, createUser, loginCookie, startTestApp, type TestApp } from './helpers/test-app';

type AuditEvent = { action: string; actor: string; detail: Record<string, unknown> };

async function audit(t: TestApp, action: string): Promise<AuditEvent[]> {
  const response = await request(t.http).get(`/api/audit?action=${action}`).set('x-api-key', API_KEY).expect(200);
  return (response.body as { events: AuditEvent[] }).events;
}

describe('Passwords (e2e)', () => {
  describe('first start without AUTH_USER/AUTH_PASS', () => {
    it('should write the generated admin password to a 0600 file beside the database and log only its path', async () => {
      const o = await startObservabilityApp({ AUTH_USER: '', AUTH_PASS: '' });
      try {
        const file = path.join(o.dir, 'initial-admin-password');
        expect(statSync(file).mode & 0o777).toBe(0o600);
        const password = readFileSync(file, 'utf8').trim();
        expect(password.length).toBeGreaterThanOrEqual(20);
        await request(o.http).post('/api/auth/login').send({ username: 'admin', password }).expect(200);
        const logs = o.logs.text();
        expect(logs).toContain(`its password is in ${file} (mode 0600)`);
        expect(logs).not.toContain(password);
      } finally {
        await o.close();
      }
    });
  });

  describe('with a running app', () => {
    let t: TestApp;

    beforeEach(async () => {
      t = await startTestApp();
    });

    afterEach(async () => {
      await t.close();
    });

    describe('POST /api/auth/password', () => {
      it("should change the caller's password, end their other sessions only, and audit it", async () => {
        const mine = await loginCookie(t.http);
        const other = await loginCookie(t.http);
        const response = await request(t.http)
          .post('/api/auth/password')
          .set('Cookie', mine)
          .send({ current_password: ADMIN.password, new_password: 'a-brand-new-passphrase' })
          .expect(200);
        expect(response.body).toEqual({ success: true, sessions_ended: 1 });

        await request(t.http).get('/api/auth/me').set('Cookie', mine).expect(200);
        await request(t.http).get('/api/auth/me').set('Cookie', other).expect(401);
        await request(t.http).post('/api/auth/login').send(ADMIN).expect(401);
        await request(t.http)
          .post('/api/auth/login')
          .send({ username: ADMIN.username, password: 'a-brand-new-passphrase' })
          .expect(200);
        const [event] = await audit(t, 'password_change');
        expect(event).toMatchObject({ actor: 'admin', detail: { username: 'admin', sessions_ended: 1 } });
        expect(JSON.stringify(event)).not.toContain('a-brand-new-passphrase');
      });

      it('should refuse a wrong current password with 400, keep the old one, audit it, and count it as a failed login', async () => {
        const cookie = await loginCookie(t.http);
        const wrong = { current_password: 'not-my-password', new_password: 'a-brand-new-passphrase' };
        const response = await request(t.http).post('/api/auth/password').set('Cookie', cookie).send(wrong).expect(400);
        expect(response.body).toEqual({ error: 'current_password is not your current password' });
        await request(t.http).post('/api/auth/login').send(ADMIN).expect(200);
        expect(await audit(t, 'password_change_failed')).toHaveLength(1);

        for (let i = 0; i < 4; i++) {
          await request(t.http).post('/api/auth/password').set('Cookie', cookie).send(wrong).expect(400);
        }
        const blocked = await request(t.http).post('/api/auth/password').set('Cookie', cookie).send(wrong).expect(429);
        expect(Number(blocked.headers['retry-after'])).toBeGreaterThanOrEqual(55);
      });

      it('should apply the 12-character rule and name missing fields', async () => {
        const cookie = await loginCookie(t.http);
        const short = await request(t.http)
          .post('/api/auth/password')
          .set('Cookie', cookie)
          .send({ current_password: ADMIN.password, new_password: 'short' })
          .expect(400);
        expect(short.body.error).toBe('new_password must be at least 12 characters');
        const missing = await request(t.http).post('/api/auth/password').set('Cookie', cookie).send({}).expect(400);
        expect(missing.body.details).toEqual(['current_password is required', 'new_password is required']);
        await request(t.http).post('/api/auth/login').send(ADMIN).expect(200);
      });

      it('should refuse the API key (it has no password) and anonymous callers', async () => {
        const response = await request(t.http)
          .post('/api/auth/password')
          .set('x-api-key', API_KEY)
          .send({ current_password: 'whatever-it-is', new_password: 'a-brand-new-passphrase' })
          .expect(400);
        expect(response.body.error).toMatch(/^The API key is not a user/);
        await request(t.http)
          .post('/api/auth/password')
          .send({ current_password: ADMIN.password, new_password: 'a-brand-new-passphrase' })
          .expect(401);
      });
    });

    describe('POST /api/auth/users/:id/password', () => {
      it("should let an admin set another user's password, end all that user's sessions, and audit it", async () => {
        const ops = await createUser(t.http, 'ops', 'operator');
        const response = await request(t.http)
          .post(`/api/auth/users/${ops.id}/password`)
          .set('x-api-key', API_KEY)
          .send({ new_password: 'reset-by-the-admin-1' })
          .expect(200);
        expect(response.body).toEqual({ success: true, sessions_ended: 1 });
        await request(t.http).get('/api/auth/me').set('Cookie', ops.cookie).expect(401);
        await request(t.http)
          .post('/api/auth/login')
          .send({ username: 'ops', password: 'ops-password-123' })
          .expect(401);
        await request(t.http)
          .post('/api/auth/login')
          .send({ username: 'ops', password: 'reset-by-the-admin-1' })
          .expect(200);
        const [event] = await audit(t, 'password_reset');
        expect(event).toMatchObject({ actor: 'api-key', detail: { username: 'ops', sessions_ended: 1 } });
      });

      it('should answer 404 for an unknown user, 400 for a short password, and 403 below admin', async () => {
        const ops = await createUser(t.http, 'ops', 'operator');
        await request(t.http)
          .post('/api/auth/users/999/password')
          .set('x-api-key', API_KEY)
          .send({ new_password: 'reset-by-the-admin-1' })
          .expect(404);
        await request(t.http)
          .post(`/api/auth/users/${ops.id}/password`)
          .set('x-api-key', API_KEY)
          .send({ new_password: 'short' })
          .expect(400);
        const forbidden = await request(t.http)
          .post('/api/auth/users/1/password')
          .set('Cookie', ops.cookie)
          .send({ new_password: 'taken-over-admin-1' })
          .expect(403);
        expect(forbidden.body).toEqual({ error: 'Requires admin role' });
        await request(t.http).post('/api/auth/login').send(ADMIN).expect(200);
      });
    });
  });
});
