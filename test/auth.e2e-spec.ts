import request from 'supertest';
import { ADMIN, API_KEY, createUser, loginCookie, startTestApp, TestApp } from './helpers/test-app';

async function auditActions(t: TestApp, action: string): Promise<Array<Record<string, unknown>>> {
  const response = await request(t.http).get(`/api/audit?action=${action}`).set('x-api-key', API_KEY).expect(200);
  return (response.body as { events: Array<Record<string, unknown>> }).events;
}

describe('Authentication (e2e)', () => {
  let t: TestApp;
  /** One app for every test of a block whose tests each send one refused request (see sharedApp). */
  let shared: TestApp | undefined;

  beforeEach(async () => {
    t = shared ?? (await startTestApp());
  });

  afterEach(async () => {
    if (t !== shared) {
      await t.close();
    }
  });

  /** For the enclosing describe: its tests share one app (each checks that its refusal changed nothing). */
  function sharedApp(): void {
    beforeAll(async () => {
      shared = await startTestApp();
    });
    afterAll(async () => {
      await shared?.close();
      shared = undefined;
    });
  }

  describe('login', () => {
    it('should set an HttpOnly, SameSite=Strict, Path=/ session cookie and return the user', async () => {
      const response = await request(t.http).post('/api/auth/login').send(ADMIN).expect(200);
      expect(response.body).toEqual({ user: { id: 1, username: 'admin', role: 'admin' } });
      const cookie = (response.headers['set-cookie'] as unknown as string[]).find((c) => c.startsWith('mc-session='));
      expect(cookie).toBeDefined();
      expect(cookie).toMatch(/; HttpOnly/);
      expect(cookie).toMatch(/; SameSite=Strict/);
      expect(cookie).toMatch(/; Path=\//);
      expect(cookie).not.toMatch(/; Secure/);
      const token = /^mc-session=([^;]+)/.exec(cookie!)![1];
      const rows = await t.dataSource.query('SELECT token_hash FROM sessions');
      expect(rows).toHaveLength(1);
      expect(rows[0].token_hash).not.toContain(token);
      expect(rows[0].token_hash).toMatch(/^[0-9a-f]{64}$/);
    });

    it('should set Secure when MC_COOKIE_SECURE is true', async () => {
      const secure = await startTestApp({ MC_COOKIE_SECURE: 'true' });
      try {
        const response = await request(secure.http).post('/api/auth/login').send(ADMIN).expect(200);
        expect(String(response.headers['set-cookie'])).toMatch(/; Secure/);
      } finally {
        await secure.close();
      }
    });

    describe('malformed', () => {
      sharedApp();

      it.each([
        [{}, 'no fields'],
        [{ username: 'admin' }, 'no password'],
        [{ password: 'x' }, 'no username'],
        [{ username: 5, password: 'x' }, 'a number as username'],
        [{ username: '', password: 'x' }, 'an empty username'],
      ])('should answer 400 for %j (%s)', async (body, _why) => {
        const response = await request(t.http).post('/api/auth/login').send(body).expect(400);
        expect(typeof response.body.error).toBe('string');
      });
    });

    it('should answer 401 Invalid credentials for a wrong password or an unknown user, and audit both', async () => {
      for (const body of [
        { username: 'admin', password: 'wrong' },
        { username: 'ghost', password: 'x' },
      ]) {
        const response = await request(t.http).post('/api/auth/login').send(body).expect(401);
        expect(response.body).toEqual({ error: 'Invalid credentials' });
      }
      const failed = await auditActions(t, 'login_failed');
      expect(failed.map((e) => e.actor).sort()).toEqual(['admin', 'ghost']);
      expect(await auditActions(t, 'login')).toHaveLength(0);
    });

    it('should refuse the 6th attempt after 5 failures in a minute with 429 and Retry-After, even with the right password', async () => {
      for (let i = 0; i < 5; i++) {
        await request(t.http).post('/api/auth/login').send({ username: 'admin', password: 'wrong' }).expect(401);
      }
      const blocked = await request(t.http).post('/api/auth/login').send(ADMIN).expect(429);
      expect(typeof blocked.body.error).toBe('string');
      // The block lasts the rest of the one-minute window that began with the first failure, moments ago.
      const retryAfter = Number(blocked.headers['retry-after']);
      expect(retryAfter).toBeGreaterThanOrEqual(55);
      expect(retryAfter).toBeLessThanOrEqual(60);
    });

    it('should not count successful logins toward the limit', async () => {
      for (let i = 0; i < 8; i++) {
        await request(t.http).post('/api/auth/login').send(ADMIN).expect(200);
      }
      for (let i = 0; i < 4; i++) {
        await request(t.http).post('/api/auth/login').send({ username: 'admin', password: 'wrong' }).expect(401);
      }
      await request(t.http).post('/api/auth/login').send(ADMIN).expect(200);
    });
  });

  describe('401 bodies', () => {
    const EXPIRES_COOKIE = /^mc-session=; Path=\/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Strict$/;

    function setCookies(response: request.Response): string[] {
      return (response.headers['set-cookie'] as unknown as string[] | undefined) ?? [];
    }

    it('should keep the bare contract body for a request with no credentials, and set no cookie', async () => {
      const response = await request(t.http).get('/api/auth/me').expect(401);
      expect(response.body).toEqual({ error: 'Authentication required' });
      expect(setCookies(response)).toEqual([]);
    });

    it.each([
      ['x-api-key', 'not-the-key'],
      ['Authorization', 'Bearer not-the-key'],
    ])('should say "Invalid API key" for a wrong key in %s, and set no cookie', async (header, value) => {
      const response = await request(t.http).get('/api/backup').set(header, value).expect(401);
      expect(response.body).toEqual({
        error: 'Authentication required',
        reason: 'invalid_api_key',
        message: 'Invalid API key',
      });
      expect(setCookies(response)).toEqual([]);
    });

    it('should say "Session expired" and expire the cookie for a logged-out, an expired and an unknown session', async () => {
      const loggedOut = await loginCookie(t.http);
      await request(t.http).post('/api/auth/logout').set('Cookie', loggedOut).expect(200);
      const expired = await loginCookie(t.http);
      await t.dataSource.query('UPDATE sessions SET expires_at = 1');
      for (const cookie of [loggedOut, expired, 'mc-session=never-issued']) {
        const response = await request(t.http).get('/api/auth/me').set('Cookie', cookie).expect(401);
        expect([cookie, response.body]).toEqual([
          cookie,
          { error: 'Authentication required', reason: 'session_expired', message: 'Session expired: log in again' },
        ]);
        expect(setCookies(response)).toEqual([expect.stringMatching(EXPIRES_COOKIE)]);
      }
    });

    it('should name the key when both a wrong key and a stale cookie come, and still expire the cookie', async () => {
      const response = await request(t.http)
        .get('/api/backup')
        .set('x-api-key', 'not-the-key')
        .set('Cookie', 'mc-session=never-issued')
        .expect(401);
      expect(response.body.reason).toBe('invalid_api_key');
      expect(setCookies(response)).toEqual([expect.stringMatching(EXPIRES_COOKIE)]);
    });

    it('should not expire a working cookie sent with a wrong key: the session authenticates', async () => {
      const cookie = await loginCookie(t.http);
      const response = await request(t.http)
        .get('/api/auth/me')
        .set('x-api-key', 'not-the-key')
        .set('Cookie', cookie)
        .expect(200);
      expect(setCookies(response)).toEqual([]);
    });
  });

  describe('logout and me', () => {
    it('should revoke the session: the same cookie is refused afterwards, and the logout is audited', async () => {
      const cookie = await loginCookie(t.http);
      await request(t.http)
        .get('/api/auth/me')
        .set('Cookie', cookie)
        .expect(200, {
          user: { id: 1, username: 'admin', role: 'admin' },
        });
      await request(t.http).post('/api/auth/logout').set('Cookie', cookie).expect(200, { success: true });
      await request(t.http).get('/api/auth/me').set('Cookie', cookie).expect(401, {
        error: 'Authentication required',
        reason: 'session_expired',
        message: 'Session expired: log in again',
      });
      expect(await t.dataSource.query('SELECT * FROM sessions')).toHaveLength(0);
      expect(await auditActions(t, 'logout')).toHaveLength(1);
    });

    it('should require authentication to log out', async () => {
      await request(t.http).post('/api/auth/logout').expect(401, { error: 'Authentication required' });
    });

    it('should describe the API key as an admin without a stored id', async () => {
      await request(t.http)
        .get('/api/auth/me')
        .set('x-api-key', API_KEY)
        .expect(200, { user: { id: null, username: 'api-key', role: 'admin' } });
    });

    it('should clean expired sessions when a new one is made', async () => {
      await t.dataSource.query(
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ('old', 1, 1, 2)",
      );
      await loginCookie(t.http);
      expect(await t.dataSource.query("SELECT * FROM sessions WHERE token_hash = 'old'")).toHaveLength(0);
    });
  });

  describe('users', () => {
    it('should create a user (201), refuse a taken name (409), and audit the creation', async () => {
      const body = { username: 'ops', password: 'twelve-chars!', role: 'operator' };
      const created = await request(t.http).post('/api/auth/users').set('x-api-key', API_KEY).send(body).expect(201);
      expect(created.body.user).toMatchObject({ username: 'ops', role: 'operator' });
      expect(created.body.user).not.toHaveProperty('password_hash');
      const again = await request(t.http).post('/api/auth/users').set('x-api-key', API_KEY).send(body).expect(409);
      expect(typeof again.body.error).toBe('string');
      const rows = await t.dataSource.query("SELECT password_hash FROM users WHERE username = 'ops'");
      expect(rows[0].password_hash).toMatch(/^scrypt\$/);
      expect(rows[0].password_hash).not.toContain('twelve-chars!');
      const audit = await auditActions(t, 'user_create');
      expect(audit.some((e) => e.actor === 'api-key' && (e.detail as { username: string }).username === 'ops')).toBe(
        true,
      );
    });

    describe('refused', () => {
      sharedApp();

      it.each([
        [{ username: 'u1', password: 'short', role: 'viewer' }, 'a password under 12 characters'],
        [{ username: 'u1', password: 'long-enough-pass', role: 'superuser' }, 'an unknown role'],
        [{ username: 'bad name', password: 'long-enough-pass', role: 'viewer' }, 'a space in the name'],
        [{ username: 'u1', password: 'long-enough-pass' }, 'no role'],
        [{ username: 'u1', password: 'long-enough-pass', role: 'viewer', admin: true }, 'an unknown field'],
      ])('should answer 400 for %j (%s) and create nothing', async (body, _why) => {
        await request(t.http).post('/api/auth/users').set('x-api-key', API_KEY).send(body).expect(400);
        expect(await t.dataSource.query("SELECT * FROM users WHERE username = 'u1'")).toHaveLength(0);
      });
    });

    it('should list users without hashes, delete one (and its sessions), and audit the deletion', async () => {
      const { id, cookie } = await createUser(t.http, 'temp', 'viewer');
      const list = await request(t.http).get('/api/auth/users').set('x-api-key', API_KEY).expect(200);
      expect(list.body.users.map((u: { username: string }) => u.username)).toEqual(['admin', 'temp']);
      expect(JSON.stringify(list.body)).not.toContain('scrypt');
      await request(t.http).delete(`/api/auth/users/${id}`).set('x-api-key', API_KEY).expect(200, { success: true });
      await request(t.http).get('/api/auth/me').set('Cookie', cookie).expect(401);
      await request(t.http).delete(`/api/auth/users/${id}`).set('x-api-key', API_KEY).expect(404);
      await request(t.http).delete('/api/auth/users/abc').set('x-api-key', API_KEY).expect(400);
      expect(await auditActions(t, 'user_delete')).toHaveLength(1);
    });

    it('should never delete the last admin', async () => {
      await request(t.http).delete('/api/auth/users/1').set('x-api-key', API_KEY).expect(409);
      expect(await t.dataSource.query('SELECT * FROM users WHERE id = 1')).toHaveLength(1);
    });
  });

  describe('CSRF', () => {
    it('should refuse a cookie-authenticated change from another origin with 403 and change nothing', async () => {
      const cookie = await loginCookie(t.http);
      const body = { username: 'csrf', password: 'long-enough-pass', role: 'admin' };
      const refused = await request(t.http)
        .post('/api/auth/users')
        .set('Cookie', cookie)
        .set('Origin', 'https://evil.example')
        .send(body)
        .expect(403);
      expect(refused.body).toEqual({ error: 'CSRF origin mismatch' });
      await request(t.http)
        .put('/api/settings')
        .set('Cookie', cookie)
        .set('Referer', 'https://evil.example/page')
        .send({ settings: { 'general.auto_backup': true } })
        .expect(403, { error: 'CSRF origin mismatch' });
      expect(await t.dataSource.query("SELECT * FROM users WHERE username = 'csrf'")).toHaveLength(0);
      expect(await t.dataSource.query('SELECT * FROM settings')).toHaveLength(0);
    });

    it('should accept the same origin, and an API key from any origin', async () => {
      const cookie = await loginCookie(t.http);
      await request(t.http)
        .post('/api/auth/users')
        .set('Cookie', cookie)
        .set('Host', 'mc.example:3000')
        .set('Origin', 'http://mc.example:3000')
        .send({ username: 'same', password: 'long-enough-pass', role: 'viewer' })
        .expect(201);
      await request(t.http)
        .post('/api/auth/users')
        .set('x-api-key', API_KEY)
        .set('Origin', 'https://evil.example')
        .send({ username: 'keyed', password: 'long-enough-pass', role: 'viewer' })
        .expect(201);
    });
  });

  describe('client address', () => {
    it('should record the socket address and ignore X-Forwarded-For when no proxy is trusted', async () => {
      await request(t.http).post('/api/auth/login').set('X-Forwarded-For', '203.0.113.9').send(ADMIN).expect(200);
      const [event] = await auditActions(t, 'login');
      expect(event.ip_address).not.toBe('203.0.113.9');
      expect(String(event.ip_address)).toMatch(/127\.0\.0\.1|::1/);
    });

    it('should believe X-Forwarded-For from a trusted proxy', async () => {
      const proxied = await startTestApp({ TRUSTED_PROXIES: 'loopback' });
      try {
        await request(proxied.http).post('/api/auth/login').set('X-Forwarded-For', '203.0.113.9').send(ADMIN);
        const [event] = await auditActions(proxied, 'login');
        expect(event.ip_address).toBe('203.0.113.9');
      } finally {
        await proxied.close();
      }
    });
  });
});
