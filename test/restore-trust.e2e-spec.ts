import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AuditService } from '../src/audit/audit.service';
import { SettingsService } from '../src/settings/settings.service';
import { compiledBuild, runCli } from './helpers/cli-runner';
import { locksHeld } from './helpers/live-db-tripwire';
import { waitFor } from './helpers/observability-app';
import {
  addUser,
  auditEvents,
  growDatabase,
  inBackups,
  makeBackup,
  usernames,
  withDb,
} from './helpers/recovery-fixtures';
import { startTestApp, type TestApp, withApiKey } from './helpers/test-app';

/**
 * Issue 8, "trust in restore", in the service's own process: it never loses its locks on the live database, other
 * processes opening and closing it change nothing, an online restore keeps the audit trail and every acknowledged
 * write, and a write from another module never joins (and dies with) a settings transaction.
 */

/** A separate process opens the live database, writes a row, and closes it: `times` times. */
function foreignReaders(dbPath: string, marker: string, times = 4): void {
  for (let i = 0; i < times; i++) {
    const result = spawnSync(
      'sqlite3',
      [
        dbPath,
        '.timeout 10000',
        'CREATE TABLE IF NOT EXISTS foreign_rows (marker TEXT NOT NULL)',
        `INSERT INTO foreign_rows VALUES ('${marker}-${i}')`,
        'SELECT count(*) FROM users',
      ],
      { encoding: 'utf8' },
    );
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
  }
}

/** The service's open descriptors on the live -wal: each must still be the file on disk (not "(deleted)"). */
function walDescriptors(dbPath: string): string[] {
  return fs
    .readdirSync('/proc/self/fd')
    .map((fd) => {
      try {
        return fs.readlinkSync(path.join('/proc/self/fd', fd));
      } catch {
        return '';
      }
    })
    .filter((target) => target.startsWith(`${dbPath}-wal`));
}

describe('Trust in restore (e2e)', () => {
  let t: TestApp;
  let mainJs: string;

  beforeAll(() => {
    ({ mainJs } = compiledBuild());
  });

  beforeEach(async () => {
    t = await startTestApp();
  });

  afterEach(async () => {
    await t?.close();
  });

  const api = (method: 'get' | 'post' | 'put' | 'delete', url: string) => withApiKey(t.http, method, url);

  async function allAudit(): Promise<Array<{ action: string; detail: Record<string, unknown> }>> {
    const response = await api('get', '/api/audit?limit=1000').expect(200);
    return (response.body as { events: Array<{ action: string; detail: Record<string, unknown> }> }).events;
  }

  /** After foreign readers: a backup still works and holds their rows, and the service's -wal is the one on disk. */
  async function expectStillWhole(marker: string): Promise<void> {
    foreignReaders(t.dbPath, marker);
    expect(locksHeld(t.dbPath)?.length ?? 1).toBeGreaterThan(0);
    const made = await api('post', '/api/backup').expect(200);
    const name = (made.body as { backup: { name: string } }).backup.name;
    const rows = withDb(inBackups(t, name), (db) =>
      (
        db.prepare('SELECT marker FROM foreign_rows WHERE marker LIKE ?').all(`${marker}-%`) as Array<{
          marker: string;
        }>
      ).map((r) => r.marker),
    );
    expect(rows).toEqual([0, 1, 2, 3].map((i) => `${marker}-${i}`));
    for (const target of walDescriptors(t.dbPath)) {
      expect(target).toBe(`${t.dbPath}-wal`);
    }
  }

  it('should keep its locks through every operation, with other processes opening and closing the database', async () => {
    const first = await makeBackup(t);
    await expectStillWhole('after-backup');
    await api('post', '/api/backup/verify').send({ name: first.name }).expect(200);
    await expectStillWhole('after-verify');
    await api('get', `/api/backup/download?name=${first.name}`).expect(200);
    await expectStillWhole('after-download');
    const uploaded = await api('post', '/api/backup/upload')
      .set('Content-Type', 'application/octet-stream')
      .send(fs.readFileSync(inBackups(t, first.name)))
      .expect(201);
    await expectStillWhole('after-upload');
    await api('post', '/api/backup/restore').send({ name: uploaded.body.backup.name }).expect(200);
    await expectStillWhole('after-restore');
  });

  it('should keep its locks through a rollback, the drill, a prune and CLI commands beside it', async () => {
    await makeBackup(t);
    // A failed restore that rolls back: a backup without an admin.
    withDb(t.dbPath, (db) => db.prepare("UPDATE users SET role = 'viewer'").run());
    const noAdmin = await makeBackup(t);
    withDb(t.dbPath, (db) => db.prepare("UPDATE users SET role = 'admin'").run());
    await api('post', '/api/backup/restore').send({ name: noAdmin.name }).expect(500);
    await expectStillWhole('after-rollback');

    await api('post', '/api/scheduler').send({ task_id: 'restore_drill' }).expect(200);
    await expectStillWhole('after-drill');
    await api('put', '/api/settings')
      .send({ settings: { 'general.backup_retention_count': 1 } })
      .expect(200);
    await api('post', '/api/backup').expect(200);
    await expectStillWhole('after-prune');

    // CLI commands beside the running service, then the guard: an offline restore must be refused.
    for (const args of [
      ['backups', 'list'],
      ['backups', 'create'],
      ['backups', 'drill'],
    ]) {
      expect(runCli(mainJs, t.dbPath, args).status).toBe(0);
    }
    await expectStillWhole('after-cli');
    const newest = (await api('get', '/api/backup').expect(200)).body.backups[0].name as string;
    const refused = runCli(mainJs, t.dbPath, ['backups', 'restore', newest, '--yes']);
    expect(refused.status).toBe(1);
    expect(refused.stderr + refused.stdout).toMatch(/in use by another process/);
  });

  it('should keep every audit event across a restore and say what the restore changed', async () => {
    const made = await makeBackup(t);
    const carolId = await addUser(t, 'carol', 'admin');
    await api('put', '/api/settings')
      .send({ settings: { 'general.auto_backup': true, 'general.backup_cron': '0 4 * * *' } })
      .expect(200);
    await api('delete', `/api/auth/users/${carolId}`).expect(200);
    const before = await allAudit();
    const actions = before.map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['user_create', 'settings_update', 'user_delete']));

    const restored = await api('post', '/api/backup/restore').send({ name: made.name }).expect(200);
    expect(restored.body).toMatchObject({
      settings_changed: ['general.auto_backup', 'general.backup_cron'],
      users_changed: false,
      users_added: [],
      users_removed: [],
    });
    const after = await allAudit();
    // Every event from before the restore is still there, unchanged, and the restore's own event is newest.
    for (const event of before) {
      expect(after).toContainEqual(event);
    }
    expect(after[0]).toMatchObject({
      action: 'backup_restore',
      detail: {
        name: made.name,
        settings_changed: ['general.auto_backup', 'general.backup_cron'],
        users_changed: false,
      },
    });
    // Settings come from the backup: that is what a restore means.
    const settings = await api('get', '/api/settings').expect(200);
    const cron = (settings.body as { settings: Array<{ key: string; value: string }> }).settings.find(
      (s) => s.key === 'general.backup_cron',
    );
    expect(cron?.value).toBe('0 3 * * *');
  });

  it('should never roll back an audit write that lands during a failing settings transaction', async () => {
    // The second upsert of the transaction fails: the first must be undone, every audit row must survive.
    withDb(t.dbPath, (db) =>
      db.exec(
        "CREATE TRIGGER fail_cron BEFORE INSERT ON settings WHEN NEW.key = 'general.backup_cron' " +
          "BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
      ),
    );
    const settings = t.app.get(SettingsService);
    const audit = t.app.get(AuditService);
    const admin = { id: 1, username: 'admin', role: 'admin' as const, via: 'session' as const };
    const update = settings.update({ 'general.backup_retention_count': 7, 'general.backup_cron': '0 5 * * *' }, admin, {
      ip: null,
      userAgent: null,
      requestId: 'test',
    } as never);
    // Audit writes started at every depth of the microtask queue, so that some of them run while the settings
    // transaction is open if it ever awaits between BEGIN and COMMIT.
    const writes = Array.from({ length: 60 }, (_, i) => {
      let chain = Promise.resolve();
      for (let k = 0; k < i; k++) {
        chain = chain.then(() => undefined);
      }
      return chain.then(() => audit.record({ action: 'concurrent_write', actor: admin, detail: { i } }));
    });
    await expect(update).rejects.toThrow();
    await Promise.all(writes);
    expect(await auditEvents(t, 'concurrent_write')).toHaveLength(60);
    expect(await settings.getInt('general.backup_retention_count')).toBe(10);
  });

  it('should land every write acknowledged by another process during a restore in the safety copy or after it', async () => {
    withDb(t.dbPath, (db) => db.exec('CREATE TABLE writer_log (id INTEGER PRIMARY KEY, token TEXT NOT NULL)'));
    growDatabase(t.dbPath, 64 * 1024 * 1024);
    const made = await makeBackup(t);

    // A writer in its own process: one row every 10 ms, printing the id of each acknowledged (committed) write.
    const script = `
      const Database = require(${JSON.stringify(require.resolve('better-sqlite3'))});
      const db = new Database(process.argv[1], { timeout: 30000 });
      const insert = db.prepare('INSERT INTO writer_log (token) VALUES (?)');
      let stop = false;
      let n = 0;
      process.on('SIGTERM', () => { stop = true; });
      (function tick() {
        if (stop) { db.close(); process.exit(0); }
        const token = 'w' + (n++);
        try { insert.run(token); process.stdout.write(token + '\\n'); }
        catch (e) { process.stderr.write(String(e) + '\\n'); }
        setTimeout(tick, 10);
      })();`;
    const writer = spawn(process.execPath, ['-e', script, t.dbPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let acked = '';
    writer.stdout.on('data', (chunk: Buffer) => (acked += chunk.toString()));
    const exited = new Promise((resolve) => writer.on('exit', resolve));
    const ackedCount = (): number => acked.split('\n').filter(Boolean).length;
    // Writes on both sides of the restore: at least 10 acknowledged before it starts, and 10 more after it answers.
    const whenAcked = (count: number) => waitFor(() => (ackedCount() >= count ? true : undefined), 60_000);
    try {
      await whenAcked(10);
      const restored = await api('post', '/api/backup/restore').send({ name: made.name }).expect(200);
      await whenAcked(ackedCount() + 10);
      writer.kill('SIGTERM');
      await exited;
      const tokens = acked.trim().split('\n').filter(Boolean);
      expect(tokens.length).toBeGreaterThan(20);
      const tokensOf = (file: string): Set<string> =>
        new Set(
          withDb(file, (db) =>
            (db.prepare('SELECT token FROM writer_log').all() as Array<{ token: string }>).map((r) => r.token),
          ),
        );
      const inSafety = tokensOf(inBackups(t, restored.body.safety_backup as string));
      const inLive = tokensOf(t.dbPath);
      // Acknowledged before the restore took the lock: in the safety copy. After its commit: in the restored data.
      const lost = tokens.filter((token) => !inSafety.has(token) && !inLive.has(token));
      expect(lost).toEqual([]);
      expect(inSafety.size).toBeGreaterThan(0);
    } finally {
      writer.kill('SIGKILL');
    }
  });

  it('keeps the CLI guard: refused before and after an online restore', async () => {
    const made = await makeBackup(t);
    const before = runCli(mainJs, t.dbPath, ['backups', 'restore', made.name, '--yes']);
    expect(before.status).toBe(1);
    await api('post', '/api/backup/restore').send({ name: made.name }).expect(200);
    foreignReaders(t.dbPath, 'guard');
    const after = runCli(mainJs, t.dbPath, ['backups', 'restore', made.name, '--yes']);
    expect(after.status).toBe(1);
    expect(after.stderr + after.stdout).toMatch(/in use by another process/);
    expect(await usernames(t)).toEqual(['admin']);
  });
});
