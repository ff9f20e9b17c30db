import Database from 'better-sqlite3';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { compiledBuild, compiledNodeArgs, runCli } from './helpers/cli-runner';
import { startWriter } from './helpers/backup-fixtures';
import { auditEvents, makeBackup } from './helpers/recovery-fixtures';
import { startTestApp, type TestApp, withApiKey } from './helpers/test-app';
import { readClosedDatabase } from './helpers/live-db-tripwire';
import { BackupFiles } from '../src/backups/backup-files';
import { RestoreService } from '../src/recovery/restore.service';

/**
 * Every way a restore can fail or be cut short keeps every write another process was told had committed: a failed
 * restore leaves the live database exactly as it was (no rollback that could erase writes), the CLI restores through
 * SQLite (never a rename under a process waiting on the lock), and start-up trusts the database, not the journal.
 */
/** A journal entry as the service writes it while an online restore of `name` is copying pages in. */
function copyingJournalEntry(name: string) {
  return {
    version: 2,
    id: '0123456789abcdef',
    mode: 'online',
    name,
    stage: 'copying',
    startedAt: 1,
    actor: { id: null, username: 'api-key' },
    safety: 'mc-safety-2026-01-01_00-00-00.db',
    caller: null,
  };
}

describe('Restore paths keep every acknowledged write (e2e)', () => {
  const apps: TestApp[] = [];
  const folders: string[] = [];

  afterEach(async () => {
    for (const t of apps.splice(0)) {
      await t.close().catch(() => undefined);
    }
    for (const dir of folders.splice(0)) {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  async function app(dir?: string): Promise<TestApp> {
    const t = await startTestApp({}, dir);
    apps.push(t);
    return t;
  }

  function withDb<T>(file: string, fn: (db: Database.Database) => T): T {
    const db = new Database(file, { timeout: 10_000 });
    try {
      return fn(db);
    } finally {
      db.close();
    }
  }

  it('should keep every row of a foreign writer when a restore fails its last check', async () => {
    const t = await app();
    const writer = startWriter(t.dbPath);
    await writer.ready;
    const made = await makeBackup(t);
    const noAdmin = 'mc-backup-2020-01-01_00-00-00.db';
    fs.copyFileSync(path.join(t.backupsDir, made.name), path.join(t.backupsDir, noAdmin));
    withDb(path.join(t.backupsDir, noAdmin), (db) => db.prepare("UPDATE users SET role = 'viewer'").run());

    const response = await withApiKey(t.http, 'post', '/api/backup/restore').send({ name: noAdmin }).expect(500);
    expect(response.body).toMatchObject({ rolled_back: true, message: 'The restored database has no admin user' });
    const { rows, failures } = await writer.stop();
    expect(failures).toBe(0);
    // Every insert the writer was told had committed is in the live database.
    const stored = withDb(
      t.dbPath,
      (db) => (db.prepare('SELECT count(*) AS n FROM writer_rows').get() as { n: number }).n,
    );
    expect(stored).toBe(rows);
    expect(await auditEvents(t, 'backup_restore_failed')).toHaveLength(1);
  });

  it("should trust a caller's earlier inspection only while the backup file is unchanged", async () => {
    const t = await app();
    const made = await makeBackup(t);
    const file = path.join(t.backupsDir, made.name);
    const seen = fs.statSync(file);
    const check = await t.app.get(BackupFiles).inspect(made.name, { integrity: 'full', hash: true });
    // The backup is damaged after it was inspected: the restore must see that it changed and inspect it again.
    const bytes = fs.readFileSync(file);
    bytes.fill(0xff, bytes.length - 4096, bytes.length - 2048);
    fs.writeFileSync(file, bytes);
    await expect(
      t.app.get(RestoreService).restore(made.name, {
        actor: { id: null, username: 'api-key' },
        meta: {},
        verified: { check, size: seen.size, mtimeMs: seen.mtimeMs },
      }),
    ).rejects.toMatchObject({ status: 400 });
    expect(withDb(t.dbPath, (db) => db.prepare('SELECT count(*) AS n FROM users').get())).toEqual({ n: 1 });
    const failed = (await auditEvents(t, 'backup_restore_failed')).map((e) => e.detail);
    expect(failed).toEqual([expect.objectContaining({ stage: 'verify' })]);
  });

  it('should settle a journal by the database: a copy that never committed is recorded as interrupted', async () => {
    const dir = fs.mkdtempSync(path.join(tmpdir(), 'mc-paths-'));
    folders.push(dir);
    let t = await app(dir);
    const made = await makeBackup(t);
    const dbPath = t.dbPath;
    await t.close({ keepFiles: true });
    apps.splice(apps.indexOf(t), 1);
    // A restore killed after its safety copy, before its copy committed; meanwhile someone changed the schema.
    withDb(dbPath, (db) => db.exec('CREATE TABLE added_while_down (x INTEGER)'));
    const journal = path.join(dir, '.mission-control.db.restore-journal.json');
    fs.writeFileSync(journal, JSON.stringify(copyingJournalEntry(made.name)));
    t = await app(dir);
    expect(fs.existsSync(journal)).toBe(false);
    expect(await auditEvents(t, 'backup_restore')).toEqual([]);
    const failed = await auditEvents(t, 'backup_restore_failed');
    expect(failed).toHaveLength(1);
    expect(failed[0].detail).toMatchObject({ stage: 'interrupted', rolled_back: false, recovered_at_startup: true });
    // Nothing was rolled back: the change made while the service was down is still there.
    expect(
      withDb(dbPath, (db) => db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'added_while_down'").get()),
    ).toBeTruthy();
  });

  it.each([
    ['a safety name that is not ours', { safety: '../mission-control.db' }],
    ['an entry from another version', { version: 1, stage: 'rolling_back' }],
    ['truncated JSON', 'truncated'],
    ['a FIFO', 'fifo'],
  ])(
    'should refuse to start on a journal with %s, in one line naming the file, and touch nothing',
    async (_label, shape) => {
      const dir = fs.mkdtempSync(path.join(tmpdir(), 'mc-paths-'));
      folders.push(dir);
      const t = await app(dir);
      const made = await makeBackup(t);
      await t.close({ keepFiles: true });
      apps.splice(apps.indexOf(t), 1);
      // The service is closed: reading the file's bytes cannot drop anyone's SQLite locks.
      const closedDatabase = t.dbPath;
      const dbBefore = readClosedDatabase(closedDatabase);
      const journal = path.join(dir, '.mission-control.db.restore-journal.json');
      const entry = copyingJournalEntry(made.name);
      if (shape === 'fifo') {
        expect(spawnSync('mkfifo', [journal]).status).toBe(0);
      } else if (shape === 'truncated') {
        fs.writeFileSync(journal, JSON.stringify(entry).slice(0, 40));
      } else {
        fs.writeFileSync(journal, JSON.stringify({ ...entry, ...(shape as object) }));
      }
      await expect(startTestApp({}, dir)).rejects.toThrow(/restore journal .*restore-journal\.json is not valid/);
      expect(readClosedDatabase(closedDatabase).equals(dbBefore)).toBe(true);
      expect(fs.readdirSync(path.join(dir, 'backups'))).toEqual([made.name]);
    },
  );

  it('should keep every acknowledged row of writers that open the database while the CLI restores', async () => {
    const { mainJs } = compiledBuild();
    const dir = fs.mkdtempSync(path.join(tmpdir(), 'mc-paths-'));
    folders.push(dir);
    const t = await app(dir);
    withDb(t.dbPath, (db) => db.exec('CREATE TABLE acks (id TEXT PRIMARY KEY)'));
    const made = await makeBackup(t);
    await t.close({ keepFiles: true });
    apps.splice(apps.indexOf(t), 1);

    const cli = spawn(process.execPath, [...compiledNodeArgs(), mainJs, 'backups', 'restore', made.name, '--yes'], {
      env: { PATH: process.env.PATH ?? '', MISSION_CONTROL_DB_PATH: t.dbPath, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    cli.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    cli.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const cliExit = new Promise<number | null>((resolve) => cli.on('exit', resolve));
    // Writers arrive once the CLI has checked that nobody holds the database, and keep arriving through the copy.
    while (!/Restoring/.test(output) && cli.exitCode === null) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const writers: Array<Promise<{ id: string; ok: boolean }>> = [];
    for (let i = 0; i < 25; i++) {
      const id = `w-${i}`;
      writers.push(
        new Promise((resolve) => {
          const child = spawn('sqlite3', [t.dbPath, '.timeout 20000', `INSERT INTO acks VALUES ('${id}')`]);
          child.on('exit', (code) => resolve({ id, ok: code === 0 }));
        }),
      );
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    const results = await Promise.all(writers);
    expect(await cliExit).toBe(0);
    const acknowledged = results.filter((r) => r.ok).map((r) => r.id);
    const live = withDb(t.dbPath, (db) =>
      (db.prepare('SELECT id FROM acks').all() as { id: string }[]).map((r) => r.id),
    );
    const safetyName = fs.readdirSync(path.join(dir, 'backups')).find((n) => n.startsWith('mc-safety-'));
    expect(safetyName).toBeDefined();
    const safety = withDb(path.join(dir, 'backups', safetyName as string), (db) =>
      (db.prepare('SELECT id FROM acks').all() as { id: string }[]).map((r) => r.id),
    );
    // Each acknowledged row is either in what was replaced (the safety copy) or in the result: none vanished.
    for (const id of acknowledged) {
      expect([...live, ...safety]).toContain(id);
    }
    expect(acknowledged.length).toBeGreaterThan(0);
    expect(spawnSync('sqlite3', [t.dbPath, 'PRAGMA integrity_check'], { encoding: 'utf8' }).stdout.trim()).toBe('ok');
    expect(runCli(mainJs, t.dbPath, ['backups', 'list']).status).toBe(0);
  });
});
