import request from 'supertest';
import { API_KEY, startTestApp, type TestApp } from './helpers/test-app';

/** The backups rate limit speaks the standard headers only (issue #12 item 11). */
describe('Rate-limit headers (e2e)', () => {
  let t: TestApp;

  beforeEach(async () => {
    t = await startTestApp();
  });

  afterEach(async () => {
    await t.close();
  });

  const del = () =>
    request(t.http).delete('/api/backup').set('x-api-key', API_KEY).send({ name: 'mc-backup-2000-01-01_00-00-00.db' });

  it('should send RateLimit-Limit/Remaining/Reset while allowed, and only the standard Retry-After on the 429', async () => {
    const first = await del().expect(404);
    expect(first.headers).toMatchObject({ 'ratelimit-limit': '10', 'ratelimit-remaining': '9' });
    expect(Number(first.headers['ratelimit-reset'])).toBeGreaterThanOrEqual(55);
    for (let i = 0; i < 9; i++) {
      await del().expect(404);
    }
    const blocked = await del().expect(429);
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThanOrEqual(55);
    expect(blocked.headers).toMatchObject({ 'ratelimit-limit': '10', 'ratelimit-remaining': '0' });
    const names = Object.keys(blocked.headers);
    expect(names.filter((name) => name.startsWith('retry-after-') || name.startsWith('x-ratelimit'))).toEqual([]);
  });
});

/** HSTS only where it means something (issue #12 item 13). */
describe('Strict-Transport-Security (e2e)', () => {
  let t: TestApp | undefined;

  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('should not send HSTS over plain http', async () => {
    t = await startTestApp();
    const response = await request(t.http).get('/api/health');
    expect(response.headers['strict-transport-security']).toBeUndefined();
  });

  it('should send HSTS when a trusted proxy says the client used https', async () => {
    t = await startTestApp({ TRUSTED_PROXIES: 'loopback' });
    const viaHttps = await request(t.http).get('/api/health').set('X-Forwarded-Proto', 'https');
    expect(viaHttps.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
    const viaHttp = await request(t.http).get('/api/health').set('X-Forwarded-Proto', 'http');
    expect(viaHttp.headers['strict-transport-security']).toBeUndefined();
  });

  it('should send HSTS on every response when MC_COOKIE_SECURE is on', async () => {
    t = await startTestApp({ MC_COOKIE_SECURE: 'true' });
    const response = await request(t.http).get('/api/health');
    expect(response.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
  });
});
