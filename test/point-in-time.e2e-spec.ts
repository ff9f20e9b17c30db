import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ReplicationService } from '../src/replication/replication.service';
import { runCliAsync } from './helpers/s3-fixtures';
import { replicaPerTest } from './helpers/replica-fixtures';
import { type TestApp, withApiKey } from './helpers/test-app';
import { compiledBuild } from './helpers/cli-runner';

/** POST /api/backup/restore {"point_in_time"}: the moment rebuilt from the replica, restored online like a backup. */
describe('Point-in-time restore (e2e: the real app, s3rver)', () => {
  const replica = replicaPerTest();
  const start = (syncIntervalMs = '60000'): Promise<TestApp> =>
    replica.start({ REPLICATION_SYNC_INTERVAL_MS: syncIntervalMs });

  function settingIn(file: string, key: string): string | undefined {
    const db = new Database(file, { readonly: true });
    try {
      const row = db.prepare('SELECT value FROM settings WHERE key = ?').get(key) as { value: string } | undefined;
      return row?.value;
    } finally {
      db.close();
    }
  }

  function retentionIn(file: string): string | undefined {
    return settingIn(file, 'general.backup_retention_count');
  }

  async function setRetention(app: TestApp, count: number): Promise<void> {
    await withApiKey(app.http, 'put', '/api/settings')
      .send({ settings: { 'general.backup_retention_count': count } })
      .expect(200);
  }

  it('should restore the state as of a moment: every commit shipped at or before it, none after', async () => {
    const app = await start();
    const replication = app.app.get(ReplicationService);
    await replication.settle();
    await setRetention(app, 7);
    await replication.syncNow();
    const moment = new Date();
    await new Promise((resolve) => setTimeout(resolve, 30));
    await setRetention(app, 8);
    await replication.syncNow();
    expect(retentionIn(app.dbPath)).toBe('8');

    const response = await withApiKey(app.http, 'post', '/api/backup/restore')
      .send({ point_in_time: moment.toISOString() })
      .expect(200);
    expect(response.body).toMatchObject({
      success: true,
      point_in_time: moment.toISOString(),
      safety_backup: expect.stringMatching(/^mc-safety-/),
      restored: expect.stringMatching(/^mc-upload-/),
    });
    const restoredTo = Date.parse(response.body.restored_to as string);
    expect(restoredTo).toBeLessThanOrEqual(moment.getTime());
    expect(retentionIn(app.dbPath)).toBe('7');
    // The safety copy holds what was replaced.
    expect(retentionIn(path.join(app.backupsDir, response.body.safety_backup as string))).toBe('8');
    // The rebuild and the scratch copy made beside its admission are gone; the published moment and the safety stay.
    expect(fs.readdirSync(app.backupsDir).filter((entry) => entry.startsWith('.'))).toEqual([]);

    const audit = await withApiKey(app.http, 'get', '/api/audit?action=backup_restore').expect(200);
    const events = (audit.body as { events: { detail: Record<string, unknown> }[] }).events;
    expect(events).toHaveLength(1);
    expect(events[0].detail).toMatchObject({ point_in_time: moment.toISOString(), restored_to: expect.any(String) });
    // The replica's history continues as a new generation.
    await replication.settle();
    const generations = await withApiKey(app.http, 'get', '/api/audit?action=replication_generation').expect(200);
    expect((generations.body as { events: unknown[] }).events.length).toBeGreaterThanOrEqual(2);
  });

  it('should refuse a moment outside the window with what is restorable, and bad input with 400', async () => {
    const app = await start();
    const replication = app.app.get(ReplicationService);
    await replication.settle();
    const before = await withApiKey(app.http, 'post', '/api/backup/restore')
      .send({ point_in_time: '2001-01-01T00:00:00Z' })
      .expect(400);
    expect(before.body).toMatchObject({
      error: expect.stringMatching(/restorable/),
      restorable_from: expect.any(String),
    });
    await withApiKey(app.http, 'post', '/api/backup/restore').send({ point_in_time: 'yesterday' }).expect(400);
    await withApiKey(app.http, 'post', '/api/backup/restore')
      .send({ point_in_time: new Date().toISOString(), name: 'mc-backup-2026-01-01_00-00-00.db' })
      .expect(400);
    // Nothing was restored, nothing was left behind.
    const audit = await withApiKey(app.http, 'get', '/api/audit?action=backup_restore').expect(200);
    expect((audit.body as { events: unknown[] }).events).toEqual([]);
    expect(fs.readdirSync(app.dir).filter((f) => f.startsWith('.mc-pitr-'))).toEqual([]);
  });

  it('should restore a backup online while a writer commits and the service streams, then go on in a new generation', async () => {
    const app = await start('100');
    const replication = app.app.get(ReplicationService);
    await replication.settle();
    await setRetention(app, 7);
    const backup = await withApiKey(app.http, 'post', '/api/backup').expect(200);
    const name = (backup.body as { backup: { name: string } }).backup.name;
    await setRetention(app, 8);
    // A writer keeps committing another setting (through the API, as users do) while the restore runs and the
    // shipper streams on its own timer; what it got acknowledged before the restore is replaced by the backup's.
    let writing = true;
    let acknowledged = 0;
    const writer = (async () => {
      for (let value = 1; writing; value++) {
        const response = await withApiKey(app.http, 'put', '/api/settings').send({
          settings: { 'general.backup_retention_days': 1 + (value % 300) },
        });
        if (response.status === 200) {
          acknowledged++;
        }
      }
    })();
    while (acknowledged < 3) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    await withApiKey(app.http, 'post', '/api/backup/restore').send({ name }).expect(200);
    writing = false;
    await writer;
    expect(retentionIn(app.dbPath)).toBe('7');
    // The writer may have committed after the restore too: its setting is whatever came last.
    const days = settingIn(app.dbPath, 'general.backup_retention_days');
    await withApiKey(app.http, 'put', '/api/settings')
      .send({ settings: { 'general.replication_snapshot_hours': 48 } })
      .expect(200);
    await replication.settle();
    await replication.syncNow();

    const audit = await withApiKey(app.http, 'get', '/api/audit?action=replication_generation').expect(200);
    const reasons = (audit.body as { events: { detail: { reason: string } }[] }).events.map((e) => e.detail.reason);
    expect(reasons).toContain('restore');
    const scratch = fs.mkdtempSync(path.join(tmpdir(), 'mc-pitr-scratch-'));
    try {
      const rebuilt = await replication.rebuildAt(new Date(), { scratchDir: scratch });
      // The restored state, whatever the writer committed after it, and the later write.
      expect(retentionIn(rebuilt.file)).toBe('7');
      expect(settingIn(rebuilt.file, 'general.backup_retention_days')).toBe(days);
      expect(settingIn(rebuilt.file, 'general.replication_snapshot_hours')).toBe('48');
      expect(rebuilt.generation).toBe((await replication.status()).generation);
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  });

  it('should bring a bare machine back to the latest replicated commit with the CLI, audited', async () => {
    const app = await start();
    const replication = app.app.get(ReplicationService);
    await replication.settle();
    await setRetention(app, 9);
    await replication.syncNow();
    const env = replica.env({ REPLICATION: 'off' });
    const bare = fs.mkdtempSync(path.join(tmpdir(), 'mc-bare-'));
    try {
      const dbPath = path.join(bare, 'data', 'mission-control.db');
      const { mainJs } = compiledBuild();
      const bad = await runCliAsync(
        mainJs,
        dbPath,
        ['backups', 'restore', '--from-remote', '--at', 'soon', '--yes'],
        env,
      );
      expect(bad.status).toBe(2);
      const run = await runCliAsync(
        mainJs,
        dbPath,
        ['backups', 'restore', '--from-remote', '--at', 'latest', '--yes'],
        env,
      );
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      expect(run.stdout).toContain('Installed the replicated state as of');
      expect(retentionIn(dbPath)).toBe('9');
      const db = new Database(dbPath, { readonly: true });
      const recovery = db.prepare("SELECT detail FROM audit_log WHERE action = 'backup_restore'").all() as {
        detail: string;
      }[];
      db.close();
      expect(recovery).toHaveLength(1);
      expect(JSON.parse(recovery[0].detail)).toMatchObject({ source: expect.stringContaining('replica generation') });
      expect(fs.readdirSync(path.join(bare, 'data')).sort()).toEqual(['backups', 'mission-control.db']);
    } finally {
      fs.rmSync(bare, { recursive: true, force: true });
    }
  });
});
