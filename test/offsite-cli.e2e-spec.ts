import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import request from 'supertest';
import { sha256 } from './helpers/backup-fixtures';
import { compiledBuild } from './helpers/cli-runner';
import { startObservabilityApp, type ObservabilityApp } from './helpers/observability-app';
import {
  FaultProxy,
  makeAgeKeys,
  offsiteEnv,
  runCliAsync,
  S3_SECRET_KEY,
  startS3,
  useTestCredentials,
  waitFor,
  type AgeKeys,
  type S3Server,
} from './helpers/s3-fixtures';
import { ADMIN, API_KEY } from './helpers/test-app';

describe('Off-site copies from the CLI (keys, remote list/pull, disaster recovery)', () => {
  let mainJs: string;
  let s3: S3Server;
  let proxy: FaultProxy;
  let keys: AgeKeys;
  const folders: string[] = [];
  const apps: ObservabilityApp[] = [];

  function folder(): string {
    const dir = fs.mkdtempSync(path.join(tmpdir(), 'mc-offsite-cli-'));
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

  beforeAll(async () => {
    useTestCredentials();
    ({ mainJs } = compiledBuild());
    s3 = await startS3();
    proxy = new FaultProxy(s3.endpoint);
    await proxy.start();
    keys = await makeAgeKeys(folder());
  }, 180_000);

  afterAll(async () => {
    for (const t of apps) {
      await t.app.close();
    }
    await proxy.close();
    await s3.close();
    for (const dir of folders) {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('should generate an identity file (0600, never over an existing one) and print its recipient', async () => {
    const dir = folder();
    const out = path.join(dir, 'server.key');
    const first = await runCliAsync(mainJs, path.join(dir, 'mc.db'), ['keys', 'generate', '--out', out]);
    expect(first.status).toBe(0);
    expect(first.stdout.trim()).toMatch(/^age1[02-9ac-hj-np-z]{58}$/);
    expect(fs.statSync(out).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(out, 'utf8')).toMatch(/^AGE-SECRET-KEY-1[0-9A-Z]{58}$/m);
    expect(fs.readFileSync(out, 'utf8')).toContain(`# public key: ${first.stdout.trim()}`);
    expect(first.stdout).not.toContain('AGE-SECRET-KEY');
    const before = fs.readFileSync(out, 'utf8');
    const again = await runCliAsync(mainJs, path.join(dir, 'mc.db'), ['keys', 'generate', '--out', out]);
    expect(again.status).toBe(1);
    expect(fs.readFileSync(out, 'utf8')).toBe(before);
    expect(fs.readdirSync(dir)).toEqual(['server.key']);
  });

  it('should bring a bare machine back on the newest off-site copy with one command, then serve from it', async () => {
    // The old machine: a service with an extra user and two backups, uploaded.
    const oldDir = folder();
    const old = await startObservabilityApp(env(), {}, oldDir);
    apps.push(old);
    await request(old.http)
      .post('/api/auth/users')
      .set('x-api-key', API_KEY)
      .send({ username: 'survivor', password: 'survivor-password-1', role: 'viewer' })
      .expect(201);
    await request(old.http).post('/api/backup').set('x-api-key', API_KEY).expect(200);
    const newest = (await request(old.http).post('/api/backup').set('x-api-key', API_KEY).expect(200)).body.backup
      .name as string;
    await waitFor(async () => {
      const listed = (await request(old.http).get('/api/backup').set('x-api-key', API_KEY)).body.backups as {
        name: string;
        offsite: { status: string };
      }[];
      return listed.filter((b) => b.offsite.status === 'uploaded').length === 2;
    });
    const newestSha = sha256(path.join(old.backupsDir, newest));
    await old.app.close();
    apps.splice(apps.indexOf(old), 1);

    // `backups remote list` needs no database.
    const bare = folder();
    const dbPath = path.join(bare, 'data', 'mission-control.db');
    const listed = await runCliAsync(mainJs, dbPath, ['backups', 'remote', 'list', '--json'], env());
    expect(listed.status).toBe(0);
    const remote = JSON.parse(listed.stdout) as { backups: { name: string; sha256: string }[] };
    expect(remote.backups[0]).toMatchObject({ name: newest, sha256: newestSha });
    expect(remote.backups).toHaveLength(2);

    // Without the identity: refused, nothing written.
    const noKey = await runCliAsync(
      mainJs,
      dbPath,
      ['backups', 'restore', '--from-remote', 'latest', '--yes'],
      env({ BACKUP_ENCRYPTION_IDENTITY_FILE: '' }),
    );
    expect(noKey.status).toBe(1);
    expect(noKey.stderr).toMatch(/BACKUP_ENCRYPTION_IDENTITY_FILE/);
    expect(fs.existsSync(dbPath)).toBe(false);

    const restored = await runCliAsync(
      mainJs,
      dbPath,
      ['backups', 'restore', '--from-remote', 'latest', '--yes'],
      env(),
    );
    expect(restored.stderr).toBe('');
    expect(restored.status).toBe(0);
    expect(restored.stdout).toContain(`Installed ${newest}`);
    // The installed database is the newest copy, stamped with its own recovery: audited with its source, and no
    // scheduler run carried over as "running".
    const installed = new Database(dbPath, { readonly: true });
    const recovery = installed.prepare("SELECT actor, detail FROM audit_log WHERE action = 'backup_restore'").all() as {
      actor: string;
      detail: string;
    }[];
    const stillRunning = installed.prepare('SELECT count(*) AS n FROM scheduler_tasks WHERE running = 1').get() as {
      n: number;
    };
    installed.close();
    expect(recovery).toHaveLength(1);
    expect(JSON.parse(recovery[0].detail)).toMatchObject({ name: newest, source: expect.stringContaining(newest) });
    expect(stillRunning.n).toBe(0);
    const installedSha = sha256(dbPath);
    // Only the database itself: no temp file left beside it or in the backups folder.
    expect(fs.readdirSync(path.dirname(dbPath)).sort()).toEqual(['backups', 'mission-control.db']);
    expect(fs.readdirSync(path.join(path.dirname(dbPath), 'backups'))).toEqual([]);
    for (const run of [listed, noKey, restored]) {
      expect(run.stdout + run.stderr).not.toContain(S3_SECRET_KEY);
      expect(run.stdout + run.stderr).not.toContain('AGE-SECRET-KEY');
      expect(run.stdout + run.stderr).not.toContain('NodeVersionSupportWarning');
    }

    // A second run refuses: there is a database now.
    const twice = await runCliAsync(mainJs, dbPath, ['backups', 'restore', '--from-remote', 'latest', '--yes'], env());
    expect(twice.status).toBe(1);
    expect(sha256(dbPath)).toBe(installedSha);

    // The service starts on the result, with the old machine's users.
    const revived = await startObservabilityApp(
      { ...env(), MISSION_CONTROL_DB_PATH: dbPath, AUTH_USER: '', AUTH_PASS: '' },
      {},
      path.dirname(dbPath),
    );
    apps.push(revived);
    await request(revived.http)
      .post('/api/auth/login')
      .send({ username: 'survivor', password: 'survivor-password-1' })
      .expect(200);
    await request(revived.http)
      .post('/api/auth/login')
      .send({ username: ADMIN.username, password: ADMIN.password })
      .expect(200);
    const health = await request(revived.http).get('/api/health').expect(200);
    expect(health.body.checks.database.status).toBe('up');

    // `backups remote pull` on a machine with a database: the copy lands in the backups folder, checked.
    await revived.app.close();
    apps.splice(apps.indexOf(revived), 1);
    const pulled = await runCliAsync(mainJs, dbPath, ['backups', 'remote', 'pull', newest], env());
    expect(pulled.stderr).toBe('');
    expect(pulled.status).toBe(0);
    expect(sha256(path.join(path.dirname(dbPath), 'backups', newest))).toBe(newestSha);
    const again = await runCliAsync(mainJs, dbPath, ['backups', 'remote', 'pull', newest], env());
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/exists/);
  });

  it('should refuse a damaged off-site copy quickly and leave nothing, from the CLI and from the API', async () => {
    const oldDir = folder();
    const old = await startObservabilityApp(env(), {}, oldDir);
    apps.push(old);
    const name = (await request(old.http).post('/api/backup').set('x-api-key', API_KEY).expect(200)).body.backup
      .name as string;
    await waitFor(async () => {
      const listed = (await request(old.http).get('/api/backup').set('x-api-key', API_KEY)).body.backups as {
        name: string;
        offsite: { status: string };
      }[];
      return listed.find((b) => b.name === name)?.offsite.status === 'uploaded';
    });
    // One bit flipped in the middle of the stored object.
    const stored = s3.objectPath(`${name}.age`);
    const bytes = fs.readFileSync(stored);
    bytes[Math.floor(bytes.length / 2)] ^= 0x01;
    fs.writeFileSync(stored, bytes);

    const bare = folder();
    const dbPath = path.join(bare, 'data', 'mission-control.db');
    const run = await runCliAsync(mainJs, dbPath, ['backups', 'restore', '--from-remote', name, '--yes'], env());
    expect(run.status).toBe(1);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/does not match its manifest/);
    expect(fs.existsSync(dbPath)).toBe(false);
    expect(fs.readdirSync(path.join(bare, 'data', 'backups'))).toEqual([]);

    // The API pull of the same object: a 4xx at once, no temp file left.
    await request(old.http).delete('/api/backup').set('x-api-key', API_KEY).send({ name }).expect(200);
    const pull = await request(old.http).post('/api/backup/remote/pull').set('x-api-key', API_KEY).send({ name });
    expect(pull.status).toBeGreaterThanOrEqual(400);
    expect(pull.status).toBeLessThan(500);
    expect(pull.body.error).toMatch(/manifest/);
    expect(fs.readdirSync(old.backupsDir).filter((f) => f.startsWith('.') || f === name)).toEqual([]);
  });
});
