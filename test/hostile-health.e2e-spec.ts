import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import request from 'supertest';
import { BackupFiles } from '../src/backups/backup-files';
import { Clock } from '../src/common/clock';
import { BackupHealthState } from '../src/health/backup-health-state';
import { DatabaseProbe } from '../src/health/database-probe';
import { compiledBuild, runCli } from './helpers/cli-runner';
import { startObservabilityApp, type ObservabilityApp } from './helpers/observability-app';
import { inBackups, makeBackup } from './helpers/recovery-fixtures';
import { API_KEY, createUser, type TestApp } from './helpers/test-app';

interface HealthBody {
  status: string;
  checks: Record<string, { status: string; message?: string } & Record<string, unknown>>;
}

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await condition()) {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

/** Issue 8 item 3, issue 10 findings 2 and 5, issue 12 item 14 (health part). */
describe('Health under hostile conditions (e2e)', () => {
  let o: ObservabilityApp | undefined;

  afterEach(async () => {
    await o?.close();
    o = undefined;
  });

  const asAdmin = async (expected: number): Promise<HealthBody> =>
    (await request(o!.http).get('/api/health').set('x-api-key', API_KEY).expect(expected)).body as HealthBody;

  it('should show anonymous callers and viewers only statuses, and admins the details', async () => {
    o = await startObservabilityApp();
    await makeBackup(o as unknown as TestApp);
    const anonymous = await request(o.http).get('/api/health').expect(200);
    expect(anonymous.body).toEqual({
      status: 'ok',
      checks: {
        database: { status: 'up' },
        disk: { status: 'up' },
        last_backup: { status: 'up' },
        offsite: { status: 'up' },
        replication: { status: 'up' },
      },
    });
    const viewer = await createUser(o.http, 'watcher', 'viewer');
    const asViewer = await request(o.http).get('/api/health').set('Cookie', viewer.cookie).expect(200);
    expect(asViewer.body).toEqual(anonymous.body);
    const wrongKey = await request(o.http).get('/api/health').set('x-api-key', 'wrong').expect(200);
    expect(wrongKey.body).toEqual(anonymous.body);
    const admin = await asAdmin(200);
    expect(admin.checks.disk).toMatchObject({
      free_bytes: expect.any(Number),
      last_backup_size_bytes: expect.any(Number),
    });
    expect(admin.checks.last_backup).toMatchObject({ last_success_at: expect.any(Number) });
    expect(JSON.stringify(admin)).not.toContain(o.dir);
    // Every way an admin can present itself is recognised (a call with no credential at all skips passport).
    const bearer = await request(o.http).get('/api/health').set('Authorization', `Bearer ${API_KEY}`).expect(200);
    expect((bearer.body as HealthBody).checks.disk).toMatchObject({ free_bytes: expect.any(Number) });
    const boss = await createUser(o.http, 'boss', 'admin');
    const asAdminCookie = await request(o.http).get('/api/health').set('Cookie', boss.cookie).expect(200);
    expect((asAdminCookie.body as HealthBody).checks.disk).toMatchObject({ free_bytes: expect.any(Number) });
  });

  it('should be degraded after a failed backup attempt until the next success, auto-backup on or off', async () => {
    o = await startObservabilityApp();
    const files = o.app.get(BackupFiles);
    const snapshot = jest
      .spyOn(files, 'snapshot')
      .mockRejectedValueOnce(Object.assign(new Error('x'), { code: 'ENOSPC' }));
    await request(o.http).post('/api/backup').set('x-api-key', API_KEY).expect(500);
    snapshot.mockRestore();
    const failed = await asAdmin(200);
    expect(failed.status).toBe('degraded');
    expect(failed.checks.last_backup).toMatchObject({
      status: 'degraded',
      message: 'The most recent backup attempt failed',
      last_failure_at: expect.any(Number),
    });
    expect((await request(o.http).get('/api/health').expect(200)).body.status).toBe('degraded');
    await makeBackup(o as unknown as TestApp);
    expect((await asAdmin(200)).status).toBe('ok');
  });

  it('should run quick_check on a schedule in a worker, never per request', async () => {
    o = await startObservabilityApp(
      {},
      { databaseProbe: { firstQuickCheckMs: 0, quickCheckIntervalMs: 3_600_000, scanIntervalMs: 50 } },
    );
    const probe = o.app.get(DatabaseProbe);
    await until(() => probe.state.quickCheckAt !== null, 'the first quick_check');
    const first = await asAdmin(200);
    expect(first.checks.database).toMatchObject({
      status: 'up',
      quick_check: 'ok',
      quick_check_at: expect.any(Number),
    });
    const at = probe.state.quickCheckAt;
    for (let i = 0; i < 20; i++) {
      await request(o.http).get('/api/health').expect(200);
    }
    expect(probe.state.quickCheckAt).toBe(at);
  });

  it('should answer 503 error once another process deleted the -wal the service has open', async () => {
    o = await startObservabilityApp({}, { databaseProbe: { scanIntervalMs: 50 } });
    const dbPath = `${o.dir}/mission-control.db`;
    await request(o.http)
      .put('/api/settings')
      .set('x-api-key', API_KEY)
      .send({ settings: { 'general.backup_retention_count': 5 } })
      .expect(200);
    expect(fs.existsSync(`${dbPath}-wal`)).toBe(true);
    expect((await asAdmin(200)).status).toBe('ok');
    // What a careless sqlite3 run does to a database it believes it is alone on.
    execFileSync('rm', [`${dbPath}-wal`]);
    await until(
      async () => (await request(o!.http).get('/api/health')).status === 503,
      'health to see the deleted -wal',
    );
    const body = await asAdmin(503);
    expect(body.status).toBe('error');
    expect(body.checks.database).toMatchObject({ status: 'down', deleted_files: ['mission-control.db-wal'] });
    expect(body.checks.database.message).toMatch(/deleted by another process/);
    expect(JSON.stringify(body)).not.toContain(o.dir);
    expect((await request(o.http).get('/api/health').expect(503)).body.checks.database).toEqual({ status: 'down' });
  });

  it('should start on a live database without backup_manifests, report it, and let the CLI restore repair it', async () => {
    o = await startObservabilityApp();
    const dir = o.dir;
    const dbPath = `${dir}/mission-control.db`;
    const good = await makeBackup(o as unknown as TestApp);
    expect(fs.existsSync(inBackups(o as unknown as TestApp, good.name))).toBe(true);
    await o.app.close();
    o = undefined;
    const db = new Database(dbPath);
    db.exec('DROP TABLE backup_manifests');
    db.close();

    o = await startObservabilityApp({}, {}, dir);
    const body = await asAdmin(200);
    expect(body.status).toBe('degraded');
    expect(body.checks.database).toMatchObject({ status: 'degraded' });
    expect(body.checks.database.message).toMatch(/table "backup_manifests" is missing/);
    await o.app.close();
    o = undefined;

    const { mainJs } = compiledBuild();
    const run = runCli(mainJs, dbPath, ['backups', 'restore', good.name, '--yes']);
    expect([run.status, run.stderr]).toEqual([0, expect.any(String)]);
    o = await startObservabilityApp({}, {}, dir);
    expect((await asAdmin(200)).status).toBe('ok');
  });

  it('should cost the same per call with 1,000 backups as with none, and never list the folder per call', async () => {
    o = await startObservabilityApp();
    const t = o as unknown as TestApp;
    const perCall = async (calls: number): Promise<number> => {
      const started = performance.now();
      for (let i = 0; i < calls; i++) {
        await request(o!.http).get('/api/health').expect(200);
      }
      return (performance.now() - started) / calls;
    };
    await perCall(20); // warm-up
    const empty = await perCall(200);
    const made = await makeBackup(t);
    for (let i = 0; i < 1000; i++) {
      const stamp = `2025-01-01_00-${String(Math.floor(i / 60)).padStart(2, '0')}-${String(i % 60).padStart(2, '0')}`;
      fs.linkSync(inBackups(t, made.name), inBackups(t, `mc-backup-${stamp}.db`));
    }
    const state = o.app.get(BackupHealthState);
    const files = o.app.get(BackupFiles);
    const list = jest.spyOn(files, 'list');
    const reads = state.folderReads;
    const full = await perCall(200);
    expect(list).not.toHaveBeenCalled();
    expect(state.folderReads).toBe(reads);
    list.mockRestore();
    // Generous: the same work either way; only a per-file cost could make it several times slower.
    expect(full).toBeLessThan(empty * 3 + 2);

    // GET /api/backup with 1,000 files: once the folder has settled, an unchanged folder is not read again.
    const listNames = async (): Promise<string[]> =>
      (
        (await request(o!.http).get('/api/backup').set('x-api-key', API_KEY).expect(200)).body.backups as Array<{
          name: string;
        }>
      ).map((b) => b.name);
    expect(await listNames()).toHaveLength(1001);
    await until(async () => {
      const before = files.scans;
      await listNames();
      return files.scans === before;
    }, 'a trusted listing');
    const scans = files.scans;
    for (let i = 0; i < 30; i++) {
      expect(await listNames()).toHaveLength(1001);
    }
    expect(files.scans).toBe(scans);
    // A file copied in by hand shows at once, and one deleted by hand disappears.
    fs.linkSync(inBackups(t, made.name), inBackups(t, 'by-hand.db'));
    expect(await listNames()).toContain('by-hand.db');
    fs.unlinkSync(inBackups(t, 'mc-backup-2025-01-01_00-00-00.db'));
    expect(await listNames()).not.toContain('mc-backup-2025-01-01_00-00-00.db');
  });

  it('should answer 200 degraded, database unknown with the reason, when the probe cannot load SQLite, and retry', async () => {
    const dir = fs.mkdtempSync(path.join(tmpdir(), 'mc-obs-'));
    o = await startObservabilityApp(
      {},
      {
        databaseProbe: {
          firstQuickCheckMs: 0,
          quickCheckIntervalMs: 600_000,
          // No scheduled rounds: the test runs them, on its own clock.
          scanIntervalMs: 3_600_000,
          // As after `npm ci` under the running service: the probe's worker cannot load better-sqlite3's binary.
          nativeBinding: `${dir}/replaced/better_sqlite3.node`,
        },
      },
      dir,
    );
    let nowMs = Date.now() + 1000;
    jest.spyOn(o.app.get(Clock), 'now').mockImplementation(() => new Date(nowMs));
    const probe = o.app.get(DatabaseProbe);
    // Out-of-request log lines may land in another app's capture (see observability-app.ts): count by the state.
    const triedAt = () => probe.state.triedAt;
    const t0 = Math.floor(nowMs / 1000);

    await probe.tick();
    expect(triedAt()).toBe(t0);
    const admin = await asAdmin(200);
    expect(admin.status).toBe('degraded');
    expect(admin.checks.database).toMatchObject({
      status: 'unknown',
      reason: 'MODULE_NOT_FOUND',
      message: expect.stringMatching(/could not run/),
    });
    expect(JSON.stringify(admin)).not.toContain(dir);
    const anonymous = await request(o.http).get('/api/health').expect(200);
    expect(anonymous.body).toMatchObject({ status: 'degraded', checks: { database: { status: 'unknown' } } });

    // Tried again within a minute, not after the 10-minute schedule.
    nowMs += 29_000;
    await probe.tick();
    expect(triedAt()).toBe(t0);
    nowMs += 1_000;
    await probe.tick();
    expect(triedAt()).toBe(t0 + 30);
    expect((await asAdmin(200)).checks.database.status).toBe('unknown');
  });
});
