import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import request from 'supertest';
import { Clock } from '../src/common/clock';
import { AgeCrypto } from '../src/offsite/age-crypto';
import { LogCapture, startObservabilityApp, type ObservabilityApp } from './helpers/observability-app';
import {
  ageDecryptFile,
  FaultProxy,
  hasAgeCli,
  makeAgeKeys,
  offsiteEnv,
  S3_SECRET_KEY,
  startS3,
  useTestCredentials,
  waitFor,
  type AgeKeys,
  type S3Server,
} from './helpers/s3-fixtures';
import { API_KEY } from './helpers/test-app';

interface Listed {
  name: string;
  size: number;
  kind: string;
  sha256: string | null;
  offsite: { status: string; uploaded_at: number | null; error: string | null };
}

const captures: LogCapture[] = [];

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

async function list(t: ObservabilityApp): Promise<Listed[]> {
  const response = await request(t.http).get('/api/backup').set('x-api-key', API_KEY).expect(200);
  return (response.body as { backups: Listed[] }).backups;
}

async function audit(t: ObservabilityApp, action: string): Promise<{ detail: Record<string, unknown> }[]> {
  const response = await request(t.http).get(`/api/audit?action=${action}&limit=1000`).set('x-api-key', API_KEY);
  return (response.body as { events: { detail: Record<string, unknown> }[] }).events;
}

async function backup(t: ObservabilityApp): Promise<{ name: string; ms: number }> {
  const started = Date.now();
  const response = await request(t.http).post('/api/backup').set('x-api-key', API_KEY).expect(200);
  return { name: (response.body as { backup: { name: string } }).backup.name, ms: Date.now() - started };
}

async function offsiteStatus(t: ObservabilityApp, name: string, status: string): Promise<Listed> {
  return waitFor(
    async () => (await list(t)).find((b) => b.name === name && b.offsite.status === status),
    30_000,
    `${name} to be ${status}`,
  );
}

async function metric(t: ObservabilityApp, name: string): Promise<number> {
  const text = (await request(t.http).get('/metrics').set('x-api-key', API_KEY).expect(200)).text;
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? NaN : Number(line.split(' ')[1]);
}

describe('Off-site copies (e2e, s3rver behind a fault proxy)', () => {
  let s3: S3Server;
  let proxy: FaultProxy;
  let dir: string;
  let keys: AgeKeys;
  let breakGlass: AgeKeys;
  const apps: ObservabilityApp[] = [];

  async function start(extra: Record<string, string> = {}, appDir = dir): Promise<ObservabilityApp> {
    const t = await startObservabilityApp(
      offsiteEnv(proxy.endpoint, {
        BACKUP_ENCRYPTION_RECIPIENTS: `${keys.recipient},${breakGlass.recipient}`,
        BACKUP_ENCRYPTION_IDENTITY_FILE: keys.identityFile,
        LOG_LEVEL: 'debug',
        ...extra,
      }),
      {},
      appDir,
    );
    captures.push(t.logs);
    apps.push(t);
    return t;
  }

  async function stop(t: ObservabilityApp): Promise<void> {
    apps.splice(apps.indexOf(t), 1);
    await t.app.close();
  }

  beforeAll(() => useTestCredentials());

  beforeEach(async () => {
    s3 = await startS3();
    proxy = new FaultProxy(s3.endpoint);
    await proxy.start();
    dir = fs.mkdtempSync(path.join(tmpdir(), 'mc-offsite-'));
    // The key files go beside the data folder, inside it: removed with it, never left in the temp folder.
    keys = await makeAgeKeys(fs.mkdtempSync(path.join(dir, 'keys-')));
    breakGlass = await makeAgeKeys(fs.mkdtempSync(path.join(dir, 'keys-')));
  });

  afterEach(async () => {
    const folders = new Set([dir]);
    for (const t of apps.splice(0)) {
      await t.app.close();
      folders.add(t.dir);
    }
    await proxy.close();
    await s3.close();
    for (const folder of folders) {
      fs.rmSync(folder, { recursive: true, force: true });
    }
  });

  it('should upload every backup encrypted: the object decrypts to the exact local bytes, the manifest matches', async () => {
    const t = await start();
    const { name } = await backup(t);
    const listed = await offsiteStatus(t, name, 'uploaded');
    expect(listed.offsite.uploaded_at).toEqual(expect.any(Number));
    expect(listed.offsite.error).toBeNull();

    expect(s3.objects()).toEqual([`${name}.age`, `${name}.json`]);
    const local = path.join(t.backupsDir, name);
    const manifest = JSON.parse(fs.readFileSync(s3.objectPath(`${name}.json`), 'utf8')) as Record<string, unknown>;
    expect(manifest).toMatchObject({
      name,
      size: fs.statSync(local).size,
      sha256: sha256(local),
      object_sha256: sha256(s3.objectPath(`${name}.age`)),
      encrypted: true,
      kind: 'manual',
    });
    // Ciphertext: none of the database's own header is in the object.
    const stored = fs.readFileSync(s3.objectPath(`${name}.age`));
    expect(stored.subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    expect(stored.includes(Buffer.from('SQLite format 3'))).toBe(false);

    // Each recipient alone decrypts it: the server key and the offline break-glass key.
    for (const key of [keys, breakGlass]) {
      const out = path.join(dir, `decrypted-${path.basename(path.dirname(key.identityFile))}.db`);
      if (hasAgeCli()) {
        ageDecryptFile(key.identityFile, s3.objectPath(`${name}.age`), out);
      } else {
        const plain = await new AgeCrypto([], key.identityFile).decrypt(
          fs.createReadStream(s3.objectPath(`${name}.age`)),
        );
        fs.writeFileSync(out, Buffer.concat(await plain.toArray()));
      }
      expect(sha256(out)).toBe(sha256(local));
      expect(execFileSync('sqlite3', [out, 'PRAGMA integrity_check'], { encoding: 'utf8' }).trim()).toBe('ok');
    }

    const remote = await request(t.http).get('/api/backup/remote').set('x-api-key', API_KEY).expect(200);
    expect(remote.body).toMatchObject({
      bucket: 'mc-offsite-test',
      prefix: 'mission-control/',
      backups: [{ name, size: fs.statSync(local).size, encrypted: true, sha256: sha256(local) }],
    });

    const verified = await request(t.http)
      .post('/api/backup/remote/verify')
      .set('x-api-key', API_KEY)
      .send({ name })
      .expect(200);
    expect(verified.body).toEqual({
      ok: true,
      name,
      object: 'match',
      decrypted: true,
      integrity: 'ok',
      checksum: 'match',
      checked: ['object_sha256', 'decrypt', 'sha256', 'integrity'],
    });

    const uploads = await audit(t, 'offsite_upload');
    expect(uploads[0].detail).toMatchObject({ name, encrypted: true, sha256: sha256(local) });
    expect(await audit(t, 'offsite_verify')).toHaveLength(1);
    expect(await metric(t, 'mc_offsite_last_success_timestamp_seconds')).toBeGreaterThan(0);
    expect(await metric(t, 'mc_offsite_pending')).toBe(0);
    // Details are for admins; anonymous callers see the statuses only.
    const health = await request(t.http).get('/api/health').set('x-api-key', API_KEY).expect(200);
    expect(health.body.checks.offsite).toMatchObject({ status: 'up', configured: true, pending: 0 });
    // Safety copies are never sent: the listing says `off` for them.
  });

  it('should keep local backups fast and untouched while the bucket is down, alert, hold retention, and catch up after a restart', async () => {
    const hook = await webhook();
    try {
      const t = await start();
      await request(t.http)
        .put('/api/settings')
        .set('x-api-key', API_KEY)
        .send({ settings: { 'general.alert_webhook_url': hook.url, 'general.backup_retention_count': 1 } })
        .expect(200);
      proxy.mode = 'http503';
      const first = await backup(t);
      const second = await backup(t);
      // The backup's own request never waits for the bucket.
      expect(first.ms).toBeLessThan(5000);
      expect(second.ms).toBeLessThan(5000);
      const failed = await offsiteStatus(t, first.name, 'failed');
      expect(failed.offsite.error).toMatch(/^(HTTP 503|ServiceUnavailable)$/);
      await waitFor(async () => (await audit(t, 'offsite_failed')).length > 0, 30_000, 'offsite_failed audit');
      await waitFor(() => hook.bodies.find((b) => b.event === 'offsite_failed'), 30_000, 'the webhook');
      expect(await metric(t, 'mc_offsite_failures_total')).toBeGreaterThanOrEqual(1);
      expect(await metric(t, 'mc_offsite_pending')).toBe(2);
      // Retention count 1, but neither backup is off-site yet: both are kept.
      const names = (await list(t)).map((b) => b.name);
      expect(names).toEqual(expect.arrayContaining([first.name, second.name]));
      expect(s3.objects()).toEqual([]);

      // Failing for over an hour: health says so (the clock moves, nothing sleeps).
      const clock = t.app.get(Clock);
      const realNow = clock.nowMs();
      const spy = jest.spyOn(clock, 'now').mockImplementation(() => new Date(realNow + 2 * 60 * 60 * 1000));
      const health = await request(t.http).get('/api/health').expect(200);
      spy.mockRestore();
      expect(health.body.status).toBe('degraded');
      expect(health.body.checks.offsite.status).toBe('degraded');

      await stop(t);
      proxy.mode = 'pass';
      const again = await start();
      await offsiteStatus(again, first.name, 'uploaded');
      await offsiteStatus(again, second.name, 'uploaded');
      expect(s3.objects()).toEqual(
        [`${first.name}.age`, `${first.name}.json`, `${second.name}.age`, `${second.name}.json`].sort(),
      );
      // Now uploaded, the next backup's retention may remove them locally.
      const third = await backup(again);
      expect((await list(again)).filter((b) => b.kind !== 'safety').map((b) => b.name)).toEqual([third.name]);
    } finally {
      await hook.close();
    }
  });

  it('should survive a reset mid-body and a stalled bucket, and catch up on POST /api/backup/remote/sync', async () => {
    const t = await start({ OFFSITE_REQUEST_TIMEOUT_MS: '1000' });
    proxy.mode = 'reset';
    const { name, ms } = await backup(t);
    expect(ms).toBeLessThan(5000);
    const failed = await offsiteStatus(t, name, 'failed');
    expect(failed.offsite.error).not.toBeNull();
    expect(s3.objects()).toEqual([]);

    proxy.mode = 'stall';
    const stalled = await request(t.http).post('/api/backup/remote/sync').set('x-api-key', API_KEY).expect(200);
    expect(stalled.body).toEqual({ uploaded: 0, pending: 0, failed: 1 });
    expect((await list(t)).find((b) => b.name === name)?.offsite.error).toMatch(/TIMEDOUT|Timeout/i);
    // The local backup is untouched by all this.
    expect(fs.existsSync(path.join(t.backupsDir, name))).toBe(true);

    proxy.mode = 'pass';
    const synced = await request(t.http).post('/api/backup/remote/sync').set('x-api-key', API_KEY).expect(200);
    expect(synced.body).toEqual({ uploaded: 1, pending: 0, failed: 0 });
    expect(s3.objects()).toEqual([`${name}.age`, `${name}.json`]);
    expect((await audit(t, 'offsite_failed')).length).toBeGreaterThanOrEqual(2);
  });

  it('should report a damaged object as a mismatch', async () => {
    const t = await start();
    const { name } = await backup(t);
    await offsiteStatus(t, name, 'uploaded');
    const object = s3.objectPath(`${name}.age`);
    const bytes = fs.readFileSync(object);
    bytes[bytes.length - 100] ^= 0xff;
    fs.writeFileSync(object, bytes);
    const verified = await request(t.http)
      .post('/api/backup/remote/verify')
      .set('x-api-key', API_KEY)
      .send({ name })
      .expect(200);
    expect(verified.body).toMatchObject({ ok: false, name, object: 'mismatch' });
    const missing = await request(t.http)
      .post('/api/backup/remote/verify')
      .set('x-api-key', API_KEY)
      .send({ name: 'mc-backup-2000-01-01_00-00-00.db' })
      .expect(404);
    expect(missing.body).toEqual({ error: 'No off-site copy of that name' });
    await request(t.http)
      .post('/api/backup/remote/verify')
      .set('x-api-key', API_KEY)
      .send({ name: '../etc/passwd' })
      .expect(400);
  });

  it('should pull a copy (201), refuse a second pull (409), and refuse without an identity (400)', async () => {
    const t = await start();
    const { name } = await backup(t);
    const uploaded = await offsiteStatus(t, name, 'uploaded');
    await request(t.http).delete('/api/backup').set('x-api-key', API_KEY).send({ name }).expect(200);
    expect((await list(t)).some((b) => b.name === name)).toBe(false);
    // Deleting locally never deletes the off-site copy.
    expect(s3.objects()).toContain(`${name}.age`);

    const pulled = await request(t.http)
      .post('/api/backup/remote/pull')
      .set('x-api-key', API_KEY)
      .send({ name })
      .expect(201);
    expect(pulled.body).toMatchObject({ success: true, backup: { name, kind: 'manual' } });
    expect(sha256(path.join(t.backupsDir, name))).toBe(uploaded.sha256);
    expect((await audit(t, 'offsite_pull'))[0].detail).toMatchObject({ name, encrypted: true });
    await request(t.http).post('/api/backup/remote/pull').set('x-api-key', API_KEY).send({ name }).expect(409);
    // The pulled copy restores like any backup.
    await request(t.http).post('/api/backup/restore').set('x-api-key', API_KEY).send({ name }).expect(200);

    await stop(t);
    const noIdentity = await start({ BACKUP_ENCRYPTION_IDENTITY_FILE: '' });
    await request(noIdentity.http).delete('/api/backup').set('x-api-key', API_KEY).send({ name }).expect(200);
    const refused = await request(noIdentity.http)
      .post('/api/backup/remote/pull')
      .set('x-api-key', API_KEY)
      .send({ name })
      .expect(400);
    expect(refused.body.error).toMatch(/identity/);
    expect(fs.existsSync(path.join(noIdentity.backupsDir, name))).toBe(false);
    // Without the identity, verify still checks the stored bytes, and says that is all it checked.
    const verified = await request(noIdentity.http)
      .post('/api/backup/remote/verify')
      .set('x-api-key', API_KEY)
      .send({ name })
      .expect(200);
    expect(verified.body).toEqual({
      ok: null,
      name,
      object: 'match',
      decrypted: false,
      integrity: null,
      checksum: null,
      checked: ['object_sha256'],
    });
  });

  it('should store plain copies only when OFFSITE_ALLOW_PLAINTEXT=true', async () => {
    const t = await start({
      BACKUP_ENCRYPTION_RECIPIENTS: '',
      BACKUP_ENCRYPTION_IDENTITY_FILE: '',
      OFFSITE_ALLOW_PLAINTEXT: 'true',
    });
    const { name } = await backup(t);
    await offsiteStatus(t, name, 'uploaded');
    expect(s3.objects()).toEqual([name, `${name}.json`]);
    expect(sha256(s3.objectPath(name))).toBe(sha256(path.join(t.backupsDir, name)));
    const manifest = JSON.parse(fs.readFileSync(s3.objectPath(`${name}.json`), 'utf8')) as { encrypted: boolean };
    expect(manifest.encrypted).toBe(false);
    const verified = await request(t.http).post('/api/backup/remote/verify').set('x-api-key', API_KEY).send({ name });
    expect(verified.body).toMatchObject({
      ok: true,
      object: 'match',
      integrity: 'ok',
      checksum: 'match',
      checked: ['object_sha256', 'sha256', 'integrity'],
    });
  });

  it('should apply remote retention by count and by days, never to the newest, skipping an Object Lock refusal', async () => {
    const DAY = 24 * 60 * 60 * 1000;
    const t = await start();
    const clock = t.app.get(Clock);
    const base = Date.now();
    let offsetDays = 0;
    jest.spyOn(clock, 'now').mockImplementation(() => new Date(base + offsetDays * DAY));
    const settings = (values: Record<string, number>) =>
      request(t.http).put('/api/settings').set('x-api-key', API_KEY).send({ settings: values }).expect(200);
    const prunes = async () => (await audit(t, 'offsite_prune')).map((e) => e.detail);
    const objectsOf = (...names: string[]) => names.flatMap((n) => [`${n}.age`, `${n}.json`]).sort();

    await settings({ 'general.offsite_retention_count': 3 });
    const made: string[] = [];
    for (const days of [-10, -6, -4, -2]) {
      offsetDays = days;
      const { name } = await backup(t);
      await offsiteStatus(t, name, 'uploaded');
      made.push(name);
      if (made.length === 1) {
        // The oldest copy is under Object Lock: the bucket refuses to delete it.
        proxy.locked.add(`${name}.age`);
        proxy.locked.add(`${name}.json`);
      }
    }
    const [a, b, c, d] = made;
    // Count 3: the oldest is due, but refused; the refusal is audited and nothing else is touched.
    await waitFor(async () => (await prunes()).find((p) => p.name === a), 20_000, 'the prune of the oldest');
    expect((await prunes()).find((p) => p.name === a)).toMatchObject({ deleted: [], refused: objectsOf(a) });
    expect(s3.objects()).toEqual(objectsOf(a, b, c, d));

    // By age: older than 3 days goes (b, c), the locked one stays, d (2 days) stays, the newest e stays.
    await settings({ 'general.offsite_retention_count': 100, 'general.offsite_retention_days': 3 });
    offsetDays = 0;
    const e = (await backup(t)).name;
    await offsiteStatus(t, e, 'uploaded');
    // Pruned newest first: wait for both (c, then b).
    await waitFor(
      async () => (await prunes()).filter((p) => p.name === b || p.name === c).length === 2,
      20_000,
      'the prune by age',
    );
    expect(s3.objects()).toEqual(objectsOf(a, d, e));
    expect((await prunes()).find((p) => p.name === b)).toMatchObject({ deleted: objectsOf(b), refused: [] });

    // Everything far too old and a count of 1: only the newest survives (and the locked one).
    await settings({ 'general.offsite_retention_count': 1, 'general.offsite_retention_days': 1 });
    offsetDays = 30;
    const f = (await backup(t)).name;
    await offsiteStatus(t, f, 'uploaded');
    await waitFor(
      async () => (await prunes()).filter((p) => p.name === d || p.name === e).length === 2,
      20_000,
      'the last prunes',
    );
    expect(s3.objects()).toEqual(objectsOf(a, f));
    // Local backups are never removed by remote retention, and their listing says which copies the bucket still holds.
    const listed = await list(t);
    expect(listed.map((x) => x.name)).toEqual(expect.arrayContaining([a, b, c, d, e, f]));
    const inBucket = Object.fromEntries(listed.map((x) => [x.name, (x.offsite as { in_bucket?: unknown }).in_bucket]));
    expect([a, b, c, d, e, f].map((n) => inBucket[n])).toEqual([true, false, false, false, false, true]);
  });

  it('should cost at most 6 bucket requests per daily backup (upload, manifest, one LIST, the deletes)', async () => {
    const t = await start();
    await request(t.http)
      .put('/api/settings')
      .set('x-api-key', API_KEY)
      .send({ settings: { 'general.offsite_retention_count': 1 } })
      .expect(200);
    const first = await backup(t);
    await offsiteStatus(t, first.name, 'uploaded');
    await waitFor(() => proxy.requests.some((r) => r.method === 'GET' && r.url.includes('list-type=2')), 10_000);
    proxy.requests.length = 0;

    const second = await backup(t);
    await offsiteStatus(t, second.name, 'uploaded');
    await waitFor(async () => (await audit(t, 'offsite_prune')).length === 1, 10_000, 'the prune');
    expect(proxy.requests.map((r) => `${r.method} ${r.url.split('?')[0]}`)).toEqual([
      `PUT ${second.name}.age`,
      `PUT ${second.name}.json`,
      'GET /mc-offsite-test/',
      `DELETE ${first.name}.age`,
      `DELETE ${first.name}.json`,
    ]);
    expect(proxy.requests.length).toBeLessThanOrEqual(6);
  });

  it('should answer 400 on every remote route when off-site is not configured, and list backups as off', async () => {
    const t = await startObservabilityApp({ LOG_LEVEL: 'debug' });
    apps.push(t);
    captures.push(t.logs);
    for (const [method, route] of [
      ['get', '/api/backup/remote'],
      ['post', '/api/backup/remote/sync'],
      ['post', '/api/backup/remote/verify'],
      ['post', '/api/backup/remote/pull'],
    ] as const) {
      const response = await request(t.http)
        [method](route)
        .set('x-api-key', API_KEY)
        .send({ name: 'mc-backup-2026-01-01_00-00-00.db' });
      expect(response.status).toBe(400);
      expect(response.body).toEqual({ error: 'Off-site storage is not configured' });
    }
    const { name } = await backup(t);
    expect((await list(t)).find((b) => b.name === name)?.offsite).toEqual({
      status: 'off',
      uploaded_at: null,
      error: null,
      in_bucket: null,
    });
    const health = await request(t.http).get('/api/health').set('x-api-key', API_KEY).expect(200);
    expect(health.body.checks.offsite).toMatchObject({ status: 'up', configured: false });
  });

  afterAll(() => {
    // No secret in any line any app of this file logged.
    const text = captures.map((c) => c.text()).join('');
    expect(text.length).toBeGreaterThan(0);
    expect(text).not.toContain(S3_SECRET_KEY);
    expect(text).not.toContain('AGE-SECRET-KEY-1');
    expect(text).not.toContain('NodeVersionSupportWarning');
  });
});

async function webhook(): Promise<{ url: string; bodies: Record<string, unknown>[]; close(): Promise<void> }> {
  const bodies: Record<string, unknown>[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push(JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>);
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    bodies,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
