import request from 'supertest';
import * as credentials from '../src/auth/credentials';
import { compiledBuild, runCli } from './helpers/cli-runner';
import { ADMIN, API_KEY, createUser, loginCookie } from './helpers/test-app';
import { appPerTest, heldCall } from './helpers/held-call';

/**
 * A login checks the password (scrypt, tens of milliseconds off the event loop) and only then stores its session. A
 * password change or reset that commits in between must not leave that session working: it was opened with a
 * password that no longer exists.
 */
describe('Sessions opened with the old password (e2e)', () => {
  const app = appPerTest();

  /**
   * Starts a login whose password check is held after it has read the stored hash and found the password right,
   * until `release` is called: the widest possible gap between the check and the stored session, made on demand.
   */
  async function heldLogin(username: string, password: string) {
    const verify = credentials.verifyPassword;
    const held = heldCall<boolean>();
    jest.spyOn(credentials, 'verifyPassword').mockImplementationOnce(async (given, hash) => {
      const valid = await verify(given, hash);
      await held.hold(valid);
      return valid;
    });
    const response = request(app.t.http)
      .post('/api/auth/login')
      .send({ username, password })
      .then((r) => r);
    expect(await held.reached).toBe(true);
    return { release: held.release, response };
  }

  /** Every session a login with the old password answered with must be refused now. */
  async function survivors(responses: request.Response[]): Promise<string[]> {
    const alive: string[] = [];
    for (const response of responses.filter((r) => r.status === 200)) {
      const cookie = (response.headers['set-cookie'] as unknown as string[])[0].split(';')[0];
      if ((await request(app.t.http).get('/api/auth/me').set('Cookie', cookie)).status !== 401) {
        alive.push(cookie);
      }
    }
    return alive;
  }

  async function sessionsOf(userId: number): Promise<number> {
    const [row] = await app.t.dataSource.query<{ n: number }[]>(
      'SELECT count(*) AS n FROM sessions WHERE user_id = ?',
      [userId],
    );
    return Number(row.n);
  }

  it('should not keep a session whose login checked the password before an admin reset committed', async () => {
    const ops = await createUser(app.t.http, 'ops', 'operator');
    const login = await heldLogin('ops', 'ops-password-123');
    await request(app.t.http)
      .post(`/api/auth/users/${ops.id}/password`)
      .set('x-api-key', API_KEY)
      .send({ new_password: 'reset-by-the-admin-1' })
      .expect(200);
    login.release();
    const response = await login.response;
    expect(response.body).toEqual({ error: 'Invalid credentials' });
    expect(response.status).toBe(401);
    expect(await survivors([response])).toEqual([]);
    expect(await sessionsOf(ops.id)).toBe(0);
    const [failed] = await app.t.dataSource.query<{ actor: string; detail: string }[]>(
      "SELECT actor, detail FROM audit_log WHERE action = 'login_failed'",
    );
    expect(failed).toEqual({ actor: 'ops', detail: '{"reason":"password_changed"}' });
    await loginCookie(app.t.http, 'ops', 'reset-by-the-admin-1');
  });

  it("should not keep a session whose login checked the password before the user's own change committed", async () => {
    const mine = await loginCookie(app.t.http);
    const login = await heldLogin(ADMIN.username, ADMIN.password);
    await request(app.t.http)
      .post('/api/auth/password')
      .set('Cookie', mine)
      .send({ current_password: ADMIN.password, new_password: 'a-brand-new-passphrase' })
      .expect(200, { success: true, sessions_ended: 0 });
    login.release();
    const response = await login.response;
    expect(response.status).toBe(401);
    expect(await survivors([response])).toEqual([]);
    // Only the session that made the change is left.
    expect(await sessionsOf(1)).toBe(1);
    await request(app.t.http).get('/api/auth/me').set('Cookie', mine).expect(200);
  });

  it('should not keep a session whose login checked the password before the CLI reset it in another process', async () => {
    const { mainJs } = compiledBuild();
    const ops = await createUser(app.t.http, 'ops', 'operator');
    const login = await heldLogin('ops', 'ops-password-123');
    const run = runCli(
      mainJs,
      app.t.dbPath,
      ['users', 'reset-password', 'ops', '--password-stdin'],
      {},
      'set-by-the-cli-1\n',
    );
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
    login.release();
    const response = await login.response;
    expect(response.status).toBe(401);
    expect(await survivors([response])).toEqual([]);
    expect(await sessionsOf(ops.id)).toBe(0);
    await loginCookie(app.t.http, 'ops', 'set-by-the-cli-1');
  });

  it('should leave no working old-password session when logins loop during resets and changes', async () => {
    // Each looping client logs in from its own address (through a trusted proxy), so the failed attempts after a
    // change never reach the per-address limit.
    await app.restart({ TRUSTED_PROXIES: 'loopback' });
    const ops = await createUser(app.t.http, 'ops', 'operator');
    const passwords = ['ops-password-123', 'second-passphrase-2', 'third-passphrase-3', 'fourth-passphrase-4'];
    let opsCookie = await loginCookie(app.t.http, 'ops', passwords[0]);
    for (let round = 1; round < passwords.length; round++) {
      const old = passwords[round - 1];
      let changed = false;
      const answered: request.Response[] = [];
      // Four clients keep logging in with the old password until the change has answered, and once more after.
      const client = async (address: string): Promise<void> => {
        for (let after = 0; after < 2; after += changed ? 1 : 0) {
          answered.push(
            await request(app.t.http)
              .post('/api/auth/login')
              .set('X-Forwarded-For', address)
              .send({ username: 'ops', password: old }),
          );
        }
      };
      const clients = [1, 2, 3, 4].map((n) => client(`198.51.100.${round * 10 + n}`));
      while (answered.length < 4) {
        await new Promise((resolve) => setImmediate(resolve));
      }
      const change =
        round % 2 === 1
          ? request(app.t.http)
              .post(`/api/auth/users/${ops.id}/password`)
              .set('x-api-key', API_KEY)
              .send({ new_password: passwords[round] })
          : request(app.t.http)
              .post('/api/auth/password')
              .set('Cookie', opsCookie)
              .send({ current_password: old, new_password: passwords[round] });
      const changedResponse = await change;
      changed = true;
      await Promise.all(clients);
      expect(changedResponse.status).toBe(200);
      expect(answered.filter((r) => r.status !== 200 && r.status !== 401).map((r) => r.status)).toEqual([]);
      expect(answered.filter((r) => r.status === 401).length).toBeGreaterThanOrEqual(4);
      expect(await survivors(answered)).toEqual([]);
      opsCookie = await loginCookie(app.t.http, 'ops', passwords[round]);
    }
  });
});
