import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { EMPTY_UPLOAD } from '../src/recovery/recovery.service';
import { API_KEY, startTestApp, type TestApp } from './helpers/test-app';

/** Messages that say what to do (issue #12 item 10), each checked on the real app. */
describe('Error messages (e2e)', () => {
  let t: TestApp;

  beforeEach(async () => {
    t = await startTestApp();
  });

  afterEach(async () => {
    await t.close();
  });

  /** A raw request, so the test decides exactly which headers go out (supertest adds its own). */
  async function raw(method: string, path: string, headers: Record<string, string>, body?: Buffer) {
    const server = t.app.getHttpServer();
    if (!server.listening) {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    }
    const { port } = server.address() as AddressInfo;
    return new Promise<{ status: number; body: unknown }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }),
        );
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  it('should answer an empty upload body with 400 "body is empty", with or without Content-Length: 0', async () => {
    const headers = { 'x-api-key': API_KEY, 'Content-Type': 'application/octet-stream' };
    expect(await raw('POST', '/api/backup/upload', headers)).toEqual({ status: 400, body: { error: EMPTY_UPLOAD } });
    expect(await raw('POST', '/api/backup/upload', { ...headers, 'Content-Length': '0' }, Buffer.alloc(0))).toEqual({
      status: 400,
      body: { error: EMPTY_UPLOAD },
    });
  });

  it('should say "password is required" for a login without one, and "name is required" for a nameless verify', async () => {
    const login = await request(t.http).post('/api/auth/login').send({ username: 'admin' }).expect(400);
    expect(login.body).toEqual({ error: 'password is required', details: ['password is required'] });
    for (const route of ['/api/backup/verify', '/api/backup/restore']) {
      const response = await request(t.http).post(route).set('x-api-key', API_KEY).send({}).expect(400);
      expect(response.body).toEqual({ error: 'name is required' });
    }
  });

  it('should answer a form-encoded login with one line: send JSON', async () => {
    const response = await request(t.http)
      .post('/api/auth/login')
      .type('form')
      .send({ username: 'admin', password: 'admin-password-123' })
      .expect(415);
    expect(response.body).toEqual({ error: 'Send the body as JSON, with Content-Type: application/json' });
  });

  it('should answer a known path with an unsupported method with 405 and Allow, and an unknown path with 404', async () => {
    const patch = await request(t.http).patch('/api/settings').set('x-api-key', API_KEY).send({}).expect(405);
    expect(patch.headers.allow).toBe('GET, HEAD, PUT');
    expect(patch.body).toEqual({ error: 'Method not allowed: use GET, HEAD, PUT' });
    const put = await request(t.http).put('/api/backup/verify').set('x-api-key', API_KEY).send({}).expect(405);
    expect(put.headers.allow).toBe('POST');
    const byId = await request(t.http).get('/api/auth/users/7').set('x-api-key', API_KEY).expect(405);
    expect(byId.headers.allow).toBe('DELETE');
    await request(t.http).patch('/api/no-such-thing').set('x-api-key', API_KEY).expect(404);
    // A 404 from a handler stays a 404.
    await request(t.http).delete('/api/auth/users/999').set('x-api-key', API_KEY).expect(404);
  });

  it('should refuse an unknown audit action filter with 400 listing the known actions', async () => {
    const response = await request(t.http)
      .get('/api/audit?action=backup_created')
      .set('x-api-key', API_KEY)
      .expect(400);
    expect(response.body.error).toMatch(
      /^Unknown action "backup_created": use one of login, login_failed, .*backup_create/,
    );
    expect(response.body.known_actions).toEqual(expect.arrayContaining(['backup_create', 'settings_update']));
    await request(t.http).get('/api/audit?action=backup_create').set('x-api-key', API_KEY).expect(200);
  });

  it('should accept the common cron macros and store the 5 fields they stand for', async () => {
    await request(t.http)
      .put('/api/settings')
      .set('x-api-key', API_KEY)
      .send({ settings: { 'general.backup_cron': '@daily' } })
      .expect(200);
    const settings = (await request(t.http).get('/api/settings').set('x-api-key', API_KEY).expect(200)).body as {
      settings: Array<{ key: string; value: string }>;
    };
    expect(settings.settings.find((s) => s.key === 'general.backup_cron')?.value).toBe('0 0 * * *');
    const bad = await request(t.http)
      .put('/api/settings')
      .set('x-api-key', API_KEY)
      .send({ settings: { 'general.backup_cron': '@reboot' } })
      .expect(400);
    expect(JSON.stringify(bad.body)).toContain('@daily');
  });
});
