import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import request from 'supertest';
import { Clock } from '../src/common/clock';
import { OffsiteBucket } from '../src/offsite/offsite-bucket';
import { findRemoteCopy, listRemoteBackups } from '../src/offsite/remote-catalog';
import { compiledBuild } from './helpers/cli-runner';
import { startObservabilityApp, type ObservabilityApp } from './helpers/observability-app';
import {
  BUCKET,
  FaultProxy,
  makeAgeKeys,
  offsiteEnv,
  PREFIX,
  runCliAsync,
  startS3,
  useTestCredentials,
  waitFor,
  type AgeKeys,
  type S3Server,
} from './helpers/s3-fixtures';
import { API_KEY } from './helpers/test-app';

interface Listed {
  name: string;
  offsite: { status: string };
}

const DAY_MS = 24 * 60 * 60 * 1000;

async function list(t: ObservabilityApp): Promise<Listed[]> {
  return (await request(t.http).get('/api/backup').set('x-api-key', API_KEY).expect(200)).body.backups as Listed[];
}

async function backup(t: ObservabilityApp): Promise<string> {
  return (await request(t.http).post('/api/backup').set('x-api-key', API_KEY).expect(200)).body.backup.name as string;
}

async function uploaded(t: ObservabilityApp, name: string, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    async () => (await list(t)).some((b) => b.name === name && b.offsite.status === 'uploaded'),
    timeoutMs,
    `${name} to be uploaded`,
  );
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The service's own bucket adapter, as the CLI builds it. */
function bucketAt(endpoint: string): OffsiteBucket {
  return new OffsiteBucket(
    {
      bucket: BUCKET,
      prefix: PREFIX,
      region: 'us-east-1',
      endpoint,
      forcePathStyle: true,
      recipients: [],
      allowPlaintext: true,
    },
    3000,
  );
}

/** The name of a backup taken at `ms` (as formatBackupName writes it). */
function nameAt(ms: number, seq = 0): string {
  const iso = new Date(ms).toISOString();
  const stamp = `${iso.slice(0, 10)}_${iso.slice(11, 19).replace(/:/g, '-')}`;
  return `mc-backup-${stamp}${seq > 1 ? `-${seq}` : ''}.db`;
}

describe('Off-site copies: what the bucket holds is the truth (e2e, s3rver)', () => {
  let s3: S3Server;
  let proxy: FaultProxy;
  let keys: AgeKeys;
  let direct: S3Client;
  const folders: string[] = [];
  const apps: ObservabilityApp[] = [];

  function folder(): string {
    const dir = fs.mkdtempSync(path.join(tmpdir(), 'mc-offsite-truth-'));
    folders.push(dir);
    return dir;
  }

  function env(extra: Record<string, string> = {}): Record<string, string> {
    return offsiteEnv(proxy.endpoint, {
      BACKUP_ENCRYPTION_RECIPIENTS: keys.recipient,
      BACKUP_ENCRYPTION_IDENTITY_FILE: keys.identityFile,
      ...extra,
    });
  }

  async function start(extra: Record<string, string> = {}, dir = folder()): Promise<ObservabilityApp> {
    const t = await startObservabilityApp(env(extra), {}, dir);
    apps.push(t);
    return t;
  }

  /** Straight into s3rver, past the proxy (so the proxy's request log only holds what the code under test sent). */
  async function put(name: string, body: Buffer | string): Promise<void> {
    await direct.send(new PutObjectCommand({ Bucket: BUCKET, Key: PREFIX + name, Body: body }));
  }

  beforeAll(async () => {
    useTestCredentials();
    keys = await makeAgeKeys(folder());
  });

  beforeEach(async () => {
    s3 = await startS3();
    proxy = new FaultProxy(s3.endpoint);
    await proxy.start();
    direct = new S3Client({
      region: 'us-east-1',
      endpoint: s3.endpoint,
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
    });
  });

  afterEach(async () => {
    for (const t of apps.splice(0)) {
      await t.app.close();
    }
    direct.destroy();
    await proxy.close();
    await s3.close();
  });

  afterAll(() => {
    for (const dir of folders) {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('should upload a backup the CLI made while the service runs within seconds, not on the 5-minute poll', async () => {
    const t = await start();
    // The worker has started (its first request) and found nothing to do: only the folder can wake it early now.
    await waitFor(() => proxy.requests.some((r) => r.url.includes('uploads=')), 10_000, 'the worker to start');
    const { mainJs } = compiledBuild();
    const made = await runCliAsync(mainJs, path.join(t.dir, 'mission-control.db'), ['backups', 'create'], env());
    expect(made.stderr).toBe('');
    expect(made.status).toBe(0);
    const name = /Created (mc-backup-\S+\.db)/.exec(made.stdout)?.[1];
    expect(name).toBeDefined();
    await uploaded(t, name!, 20_000);
    expect(s3.objects()).toEqual([`${name}.age`, `${name}.json`]);
  });

  it('should upload the newest waiting backup first after an outage', async () => {
    const t = await start();
    // The worker's start-up makes every waiting row due again before its look at the bucket (the LIST): once that
    // LIST has arrived, nothing but the sync below can retry a failed row before its 30 s back-off, so no attempt of
    // the worker's own is left to ship one when the bucket returns.
    await waitFor(
      () => proxy.requests.some((r) => r.method === 'GET' && r.url.includes('list-type=2')),
      10_000,
      "the worker's start-up look at the bucket",
    );
    proxy.mode = 'http503';
    const made = [await backup(t), await backup(t), await backup(t)];
    await waitFor(
      async () => (await list(t)).filter((b) => b.offsite.status === 'failed').length === 3,
      30_000,
      'three failed uploads',
    );
    proxy.mode = 'pass';
    proxy.requests.length = 0;
    const synced = await request(t.http).post('/api/backup/remote/sync').set('x-api-key', API_KEY).expect(200);
    const order = proxy.requests
      .filter((r) => r.method === 'PUT' && r.url.split('?')[0].endsWith('.age'))
      .map((r) => r.url.split('?')[0].slice(0, -'.age'.length));
    expect(order).toEqual([...made].reverse());
    expect(synced.body).toEqual({ uploaded: 3, pending: 0, failed: 0 });
    // What this call did, not running totals: a second sync has nothing to do.
    const again = await request(t.http).post('/api/backup/remote/sync').set('x-api-key', API_KEY).expect(200);
    expect(again.body).toEqual({ uploaded: 0, pending: 0, failed: 0 });
  });

  it('should report health from the bucket after a recovery on a bare machine', async () => {
    const old = await start();
    const name = await backup(old);
    await uploaded(old, name);
    await old.app.close();
    apps.splice(apps.indexOf(old), 1);

    // A new machine with an empty backups folder, and the bucket unreachable for uploads from now on.
    const fresh = await start();
    await waitFor(
      async () => {
        const health = await request(fresh.http).get('/api/health').set('x-api-key', API_KEY).expect(200);
        return health.body.checks.offsite.newest_copy === name ? health.body.checks.offsite : null;
      },
      20_000,
      'health to see the copy in the bucket',
    );
    proxy.mode = 'http503';
    const local = await backup(fresh);
    await waitFor(
      async () => (await list(fresh)).some((b) => b.name === local && b.offsite.status === 'failed'),
      30_000,
      'the failed upload',
    );
    const health = await request(fresh.http).get('/api/health').set('x-api-key', API_KEY).expect(200);
    expect(health.body.checks.offsite).toMatchObject({ status: 'up', newest_copy: name });
    expect(health.body.checks.offsite.last_success_at).toEqual(expect.any(Number));
    expect(health.body.checks.offsite.newest_copy_at).toBe(Math.floor(Date.parse(nameTime(name)) / 1000));
  });

  it('should ignore objects without a valid manifest and future names in retention and latest, never deleting the fresh copy', async () => {
    // A 4-byte object named far in the future with no manifest, and one with a manifest that lies about it.
    const bogus = 'mc-backup-2099-01-01_00-00-00.db';
    const liar = 'mc-backup-2098-01-01_00-00-00.db';
    await put(`${bogus}.age`, 'abcd');
    await put(`${liar}.age`, 'abcd');
    await put(
      `${liar}.json`,
      JSON.stringify({
        name: liar,
        size: 4_000_000,
        sha256: 'a'.repeat(64),
        object_sha256: sha256(Buffer.from('abcd')),
        encrypted: true,
        created_at: 0,
        kind: 'manual',
      }),
    );
    const t = await start();
    await request(t.http)
      .put('/api/settings')
      .set('x-api-key', API_KEY)
      .send({ settings: { 'general.offsite_retention_count': 2 } })
      .expect(200);
    // Two real copies made while the clock was 400 days ahead, then the clock is put right.
    const clock = t.app.get(Clock);
    const realNow = Date.now();
    const spy = jest.spyOn(clock, 'now').mockImplementation(() => new Date(realNow + 400 * DAY_MS));
    const ahead = [await backup(t)];
    await uploaded(t, ahead[0]);
    spy.mockImplementation(() => new Date(realNow + 400 * DAY_MS + 60_000));
    ahead.push(await backup(t));
    await uploaded(t, ahead[1]);
    spy.mockRestore();

    const fresh = await backup(t);
    await uploaded(t, fresh);
    await waitFor(async () => {
      const events = (await request(t.http).get('/api/audit?action=offsite_prune').set('x-api-key', API_KEY)).body
        .events as unknown[];
      return events.length >= 1;
    }, 20_000);
    // Count 2: the fresh copy and the newer of the two future-named ones stay; the bogus objects are not touched.
    const objects = s3.objects();
    expect(objects).toEqual(expect.arrayContaining([`${fresh}.age`, `${fresh}.json`, `${ahead[1]}.age`]));
    expect(objects).not.toContain(`${ahead[0]}.age`);
    expect(objects).toEqual(expect.arrayContaining([`${bogus}.age`, `${liar}.age`, `${liar}.json`]));

    // `latest` is the fresh copy: never the bogus objects, never a future name over a real one.
    const bucket = bucketAt(proxy.endpoint);
    try {
      expect((await findRemoteCopy(bucket, 'latest', Date.now()))?.name).toBe(fresh);
    } finally {
      bucket.destroy();
    }
    const health = await request(t.http).get('/api/health').set('x-api-key', API_KEY).expect(200);
    expect(health.body.checks.offsite).toMatchObject({ status: 'up', newest_copy: fresh });
  });

  it('should stop a pull or a verify at the size the manifest promised', async () => {
    const t = await start();
    const name = await backup(t);
    await uploaded(t, name);
    // The object is replaced by one far larger than its manifest says.
    await direct.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}${name}.age` }));
    await put(`${name}.age`, randomBytes(24 * 1024 * 1024));
    await request(t.http).delete('/api/backup').set('x-api-key', API_KEY).send({ name }).expect(200);

    const pulled = await request(t.http)
      .post('/api/backup/remote/pull')
      .set('x-api-key', API_KEY)
      .send({ name })
      .expect(422);
    expect(pulled.body).toEqual({ error: 'The off-site copy is larger than its manifest says' });
    // Nothing left behind: no temp file, no backup.
    expect(fs.readdirSync(t.backupsDir).filter((f) => f.includes('tmp') || f === name)).toEqual([]);
    const verified = await request(t.http)
      .post('/api/backup/remote/verify')
      .set('x-api-key', API_KEY)
      .send({ name })
      .expect(200);
    expect(verified.body).toMatchObject({ ok: false, object: 'mismatch', checked: ['object_size'] });
  });

  it('should list and find `latest` in a bucket of hundreds of copies without reading every manifest', async () => {
    const base = Date.UTC(2025, 0, 1);
    const names: string[] = [];
    for (let i = 0; i < 150; i++) {
      const name = nameAt(base + i * 60 * 60 * 1000);
      const body = randomBytes(64);
      const manifest = { name, size: 64, sha256: sha256(body), object_sha256: sha256(body), encrypted: false };
      await put(name, body);
      await put(`${name}.json`, JSON.stringify({ ...manifest, created_at: 0, kind: 'manual' }));
      names.push(name);
    }
    const newest = names[names.length - 1];
    const bucket = bucketAt(proxy.endpoint);
    try {
      proxy.requests.length = 0;
      const found = await findRemoteCopy(bucket, 'latest', Date.now());
      expect(found).toMatchObject({ name: newest, manifest: { name: newest, size: 64 } });
      expect(proxy.requests.map((r) => `${r.method} ${r.url.split('?')[0]}`)).toEqual([
        `GET /${BUCKET}/`,
        `GET ${newest}.json`,
      ]);

      proxy.requests.length = 0;
      const page = await listRemoteBackups(bucket, { limit: 10, nowMs: Date.now() });
      expect(page.total).toBe(150);
      expect(page.backups.map((b) => b.name)).toEqual([...names].reverse().slice(0, 10));
      expect(page.backups[0]).toMatchObject({ size: 64, sha256: expect.any(String) });
      expect(proxy.requests).toHaveLength(11);
    } finally {
      bucket.destroy();
    }

    proxy.requests.length = 0;
    const t = await start();
    // Its start-up look at the bucket: one LIST and the newest copy's manifest.
    await waitFor(() => proxy.requests.some((r) => r.url.startsWith(`${newest}.json`)), 10_000, 'the start-up look');
    proxy.requests.length = 0;
    const listed = await request(t.http)
      .get('/api/backup/remote?limit=5&offset=2')
      .set('x-api-key', API_KEY)
      .expect(200);
    expect(listed.body).toMatchObject({ total: 150, offset: 2 });
    expect(listed.body.backups.map((b: { name: string }) => b.name)).toEqual([...names].reverse().slice(2, 7));
    expect(proxy.requests).toHaveLength(6);
    await request(t.http).get('/api/backup/remote?limit=0').set('x-api-key', API_KEY).expect(400);

    // The service is stopped first, so the proxy's log holds the CLI's requests only: in a full run at load 12 it
    // held 52, one more than the CLI's LIST and 50 manifests, and the service was the proxy's only other client.
    await t.app.close();
    apps.splice(apps.indexOf(t), 1);
    const { mainJs } = compiledBuild();
    proxy.requests.length = 0;
    const cli = await runCliAsync(mainJs, path.join(folder(), 'none.db'), ['backups', 'remote', 'list'], env());
    expect(cli.status).toBe(0);
    expect(cli.stdout).toContain('The newest 50 of 150 copies');
    expect(proxy.requests.length).toBeLessThanOrEqual(51);
  });

  it('should say what verify checked: ok null when only the stored object could be, 404 for a missing copy', async () => {
    const t = await start();
    const name = await backup(t);
    await uploaded(t, name);
    const full = await request(t.http).post('/api/backup/remote/verify').set('x-api-key', API_KEY).send({ name });
    expect(full.body).toEqual({
      ok: true,
      name,
      object: 'match',
      decrypted: true,
      integrity: 'ok',
      checksum: 'match',
      checked: ['object_sha256', 'decrypt', 'sha256', 'integrity'],
    });
    await t.app.close();
    apps.splice(apps.indexOf(t), 1);

    const noIdentity = await start({ BACKUP_ENCRYPTION_IDENTITY_FILE: '' });
    const objectOnly = await request(noIdentity.http)
      .post('/api/backup/remote/verify')
      .set('x-api-key', API_KEY)
      .send({ name })
      .expect(200);
    expect(objectOnly.body).toEqual({
      ok: null,
      name,
      object: 'match',
      decrypted: false,
      integrity: null,
      checksum: null,
      checked: ['object_sha256'],
    });
    const missing = await request(noIdentity.http)
      .post('/api/backup/remote/verify')
      .set('x-api-key', API_KEY)
      .send({ name: 'mc-backup-2000-01-01_00-00-00.db' })
      .expect(404);
    expect(missing.body).toEqual({ error: 'No off-site copy of that name' });
  });
});

/** The ISO time in a backup's name. */
function nameTime(name: string): string {
  const m = /^mc-backup-(\d{4}-\d{2}-\d{2})_(\d{2})-(\d{2})-(\d{2})/.exec(name)!;
  return `${m[1]}T${m[2]}:${m[3]}:${m[4]}Z`;
}
