import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import request from 'supertest';
import { Clock } from '../src/common/clock';
import {
  auditEvents,
  exists,
  integrityOf,
  killIfRunning,
  listBackups,
  mountTmpfs,
  readBackup,
  sha256,
  snapshotTree,
  startWriter,
  tempFileName,
  tmpfsAvailable,
  unmount,
  type WriterProcess,
  writeSqliteFile,
} from './helpers/backup-fixtures';
import { API_KEY, loginCookie, startTestApp, TestApp } from './helpers/test-app';

const NAME_SHAPE = /^mc-backup-\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}(?:-[1-9]\d*)?\.db$/;
const OLD = 'mc-backup-2020-01-01_00-00-00.db';
/** Every error body: `{ error }`, extra fields allowed by the contract. */
const ERROR_BODY = expect.objectContaining({ error: expect.any(String) });
/** Files of the live database whose bytes SQLite may rewrite at any time; compared by presence only. */
const LIVE_SIDE_FILES = ['mission-control.db-wal', 'mission-control.db-shm'];
const TMPFS = tmpfsAvailable();

interface CreatedBackup {
  name: string;
  size: number;
  created_at: number;
  kind: string;
  duration_ms: number;
}

describe('Backups (e2e)', () => {
  let t: TestApp;
  /** Undo steps a test registers (unmount, stop a writer, remove an outside folder); run even if it fails. */
  let cleanups: Array<() => Promise<void> | void>;
  /** One app for every test of a block whose tests each prove that a refused request changed nothing. */
  let shared: TestApp | undefined;

  beforeEach(async () => {
    cleanups = [];
    t = shared ?? (await startTestApp());
  });

  afterEach(async () => {
    for (const cleanup of cleanups.reverse()) {
      await cleanup();
    }
    if (t !== shared) {
      await t?.close();
    }
  });

  const post = () => request(t.http).post('/api/backup').set('x-api-key', API_KEY);
  const del = () => request(t.http).delete('/api/backup').set('x-api-key', API_KEY);
  const inBackups = (name: string) => path.join(t.backupsDir, name);

  async function createBackup(): Promise<CreatedBackup> {
    const response = await post().expect(200);
    expect(response.body).toEqual({ success: true, backup: expect.any(Object) });
    return response.body.backup as CreatedBackup;
  }

  async function setRetention(count: number): Promise<void> {
    await request(t.http)
      .put('/api/settings')
      .set('x-api-key', API_KEY)
      .send({ settings: { 'general.backup_retention_count': count } })
      .expect(200);
  }

  /** A temp folder outside the app's folder, removed after the test. */
  function outsideFolder(): string {
    const dir = mkdtempSync(path.join(tmpdir(), 'mc-e2e-outside-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  function backupDbFiles(): string[] {
    return fs
      .readdirSync(t.backupsDir)
      .filter((name) => name.endsWith('.db'))
      .sort();
  }

  describe('POST /api/backup', () => {
    it('should copy a row written just before it, pass integrity_check, leave no -wal/-shm, 0600 in a 0700 folder', async () => {
      const username = 'written-just-before';
      await request(t.http)
        .post('/api/auth/users')
        .set('x-api-key', API_KEY)
        .send({ username, password: 'a-long-enough-password', role: 'viewer' })
        .expect(201);
      await t.dataSource.query(
        `INSERT OR REPLACE INTO settings(key, value, updated_by, updated_at) VALUES (?, ?, ?, ?)`,
        ['general.backup_retention_days', '33', 'e2e', 1],
      );
      // Precondition: the new rows live only in the WAL, so the backup must read the WAL to contain them. Read by
      // another process: a raw open and close of the live file here would drop this process's SQLite locks.
      expect(spawnSync('grep', ['-q', '-a', '-F', username, t.dbPath]).status).toBe(1);
      expect(fs.statSync(`${t.dbPath}-wal`).size).toBeGreaterThan(0);

      const before = Math.floor(Date.now() / 1000);
      const backup = await createBackup();
      const after = Math.floor(Date.now() / 1000);

      // Further fields (e.g. a checksum) are allowed by the contract.
      expect(backup).toEqual(
        expect.objectContaining({
          name: expect.stringMatching(NAME_SHAPE),
          size: expect.any(Number),
          created_at: expect.any(Number),
          kind: 'manual',
          duration_ms: expect.any(Number),
        }),
      );
      expect(backup.created_at).toBeGreaterThanOrEqual(before);
      expect(backup.created_at).toBeLessThanOrEqual(after);
      expect(backup.duration_ms).toBeGreaterThanOrEqual(0);
      const file = inBackups(backup.name);
      expect(fs.statSync(file).size).toBe(backup.size);

      const found = readBackup(file, (db) => ({
        user: db.prepare('SELECT username, role FROM users WHERE username = ?').get(username),
        days: db.prepare('SELECT value FROM settings WHERE key = ?').get('general.backup_retention_days'),
        integrity: db.pragma('integrity_check', { simple: true }),
        journalMode: db.pragma('journal_mode', { simple: true }),
      }));
      expect(found).toEqual({
        user: { username, role: 'viewer' },
        days: { value: '33' },
        integrity: 'ok',
        journalMode: 'delete',
      });
      for (const suffix of ['-wal', '-shm', '-journal']) {
        expect(exists(file + suffix)).toBe(false);
      }
      expect(fs.readdirSync(t.backupsDir)).toEqual([backup.name]);
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      expect(fs.statSync(t.backupsDir).mode & 0o777).toBe(0o700);

      const created = await auditEvents(t, 'backup_create');
      expect(created).toHaveLength(1);
      expect(created[0]).toMatchObject({ actor: 'api-key', detail: { name: backup.name, kind: 'manual' } });
      // Absolute paths stay out of what the audit returns (the list's `dir` is the one place that names one).
      expect(JSON.stringify(created[0])).not.toContain(t.dir);
    });

    it('should give 5 concurrent requests 5 distinct, whole backups', async () => {
      await setRetention(1000);
      // Listening first: supertest would otherwise start (and stop) the shared server once per request.
      const server = t.app.getHttpServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const responses = await Promise.all(
        [1, 2, 3, 4, 5].map(() => request(server).post('/api/backup').set('x-api-key', API_KEY)),
      );
      expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
      const backups = responses.map((r) => r.body.backup as CreatedBackup);
      const names = backups.map((b) => b.name);
      expect(new Set(names).size).toBe(5);
      expect(backupDbFiles()).toEqual([...names].sort());
      for (const backup of backups) {
        expect(backup.name).toMatch(NAME_SHAPE);
        expect(fs.statSync(inBackups(backup.name)).size).toBe(backup.size);
        expect(integrityOf(inBackups(backup.name))).toBe('ok');
      }
      expect(fs.readdirSync(t.backupsDir).sort()).toEqual([...names].sort());
      const created = await auditEvents(t, 'backup_create');
      expect(created.map((e) => e.detail.name).sort()).toEqual([...names].sort());
    });

    it('should finish while another process writes every few ms, and that process never fails', async () => {
      const writer: WriterProcess = startWriter(t.dbPath);
      cleanups.push(() => killIfRunning(writer.child));
      await writer.ready;

      const started = Date.now();
      const backup = await createBackup();
      const finished = Date.now();
      // Let the writer commit at least one more row after the backup (a condition, not a fixed wait), then stop it.
      for (const end = Date.now() + 20_000; Date.now() < end;) {
        const [after] = await t.dataSource.query<Array<{ n: number }>>(
          'SELECT count(*) AS n FROM writer_rows WHERE at > ?',
          [finished],
        );
        if (after.n > 0) {
          break;
        }
      }
      const result = await writer.stop();

      expect(result.errors).toBe('');
      expect(result.failures).toBe(0);
      expect(result.rows).toBeGreaterThan(20);
      const file = inBackups(backup.name);
      expect(integrityOf(file)).toBe('ok');
      const copied = readBackup(
        file,
        (db) => db.prepare('SELECT count(*) AS n FROM writer_rows').get() as { n: number },
      );
      expect(copied.n).toBeGreaterThanOrEqual(20);
      // The database stayed writable: rows were committed while the backup ran.
      const during: Array<{ n: number }> = await t.dataSource.query(
        'SELECT count(*) AS n FROM writer_rows WHERE at BETWEEN ? AND ?',
        [started, finished],
      );
      expect(during[0].n).toBeGreaterThan(0);
      expect(fs.readdirSync(t.backupsDir)).toEqual([backup.name]);
    });

    // A real full disk needs a tmpfs (root on Linux); without one the test shows as skipped, never as passed.
    (TMPFS.ok ? it : it.skip)(
      'should answer 500 Backup failed (disk_full), audit it and leave nothing when the disk fills up mid-copy (needs root for a tmpfs)',
      async () => {
        const mounted = mountTmpfs(t.backupsDir, '1m');
        expect(mounted).toEqual({ ok: true });
        cleanups.push(() => unmount(t.backupsDir));
        // A database well over the 1 MiB the folder can hold.
        await t.dataSource.query('CREATE TABLE filler(pad BLOB)');
        for (let i = 0; i < 6; i++) {
          await t.dataSource.query('INSERT INTO filler(pad) VALUES (randomblob(512 * 1024))');
        }

        const response = await post().expect(500);
        expect(response.body).toEqual({
          error: 'Backup failed',
          reason: 'disk_full',
          message: 'no space left in the backups folder',
        });
        expect(fs.readdirSync(t.backupsDir)).toEqual([]);
        const failed = await auditEvents(t, 'backup_failed');
        expect(failed).toHaveLength(1);
        expect(failed[0]).toMatchObject({ actor: 'api-key', detail: { kind: 'manual' } });
        expect(JSON.stringify(failed[0].detail)).not.toContain(t.dir);
        expect(await auditEvents(t, 'backup_create')).toHaveLength(0);
        await request(t.http).get('/api/health').expect(200);
        expect((await listBackups(t)).backups).toEqual([]);

        // Once there is room again, backups work.
        unmount(t.backupsDir);
        cleanups.pop();
        const backup = await createBackup();
        expect(integrityOf(inBackups(backup.name))).toBe('ok');
      },
    );

    it('should answer 500 Backup failed (io), audit it and create nothing when the backups folder is a file', async () => {
      rmSync(t.backupsDir, { recursive: true });
      fs.writeFileSync(t.backupsDir, 'not a folder');
      const before = snapshotTree(t.dir, LIVE_SIDE_FILES);

      const response = await post().expect(500);
      expect(response.body).toEqual({ error: 'Backup failed', reason: 'io', message: expect.any(String) });
      expect(response.text).not.toContain(t.dir);
      const failed = await auditEvents(t, 'backup_failed');
      expect(failed).toHaveLength(1);
      expect(failed[0]).toMatchObject({ actor: 'api-key', detail: { kind: 'manual' } });
      expect(snapshotTree(t.dir, LIVE_SIDE_FILES)).toEqual(before);
      expect(fs.readdirSync(t.dir).filter((n) => n.startsWith('.mc-tmp-') || n.startsWith('mc-backup-'))).toEqual([]);
      await request(t.http).get('/api/health').expect(200);
    });
  });

  describe('GET /api/backup', () => {
    it('should list backups newest first by the time in the name, with name, size and created_at, and the folder', async () => {
      const outside = outsideFolder();
      const target = path.join(outside, 'target.db');
      writeSqliteFile(target);
      // mtimes run opposite to the names, and creation order is not the answer either.
      const named = [
        'mc-backup-2023-12-31_23-59-59.db',
        'mc-backup-2024-05-01_10-00-00.db',
        'mc-upload-2024-06-01_00-00-00.db',
        'mc-backup-2025-01-01_00-00-00.db',
        'mc-backup-2025-01-01_00-00-00-2.db',
        'mc-backup-2025-01-01_00-00-00-10.db',
      ];
      named.forEach((name, i) => {
        writeSqliteFile(inBackups(name));
        const mtime = new Date(Date.UTC(2030 - i, 0, 1));
        fs.utimesSync(inBackups(name), mtime, mtime);
      });
      fs.writeFileSync(inBackups('other.db'), 'not ours, but a .db file');
      fs.utimesSync(inBackups('other.db'), new Date(Date.UTC(2001, 0, 1)), new Date(Date.UTC(2001, 0, 1)));
      // None of these is a backup.
      const tmp = tempFileName();
      fs.writeFileSync(inBackups(tmp), 'partial');
      fs.writeFileSync(inBackups(`${tmp}-journal`), 'partial');
      fs.writeFileSync(inBackups('notes.txt'), 'text');
      fs.writeFileSync(inBackups('mc-backup-2022-01-01_00-00-00.db.txt'), 'text');
      fs.writeFileSync(inBackups('.hidden.db'), 'hidden');
      fs.writeFileSync(inBackups('bad name.db'), 'space');
      fs.mkdirSync(inBackups('x.db'));
      fs.mkdirSync(inBackups('mc-backup-2021-01-01_00-00-00.db'));
      fs.symlinkSync(target, inBackups('mc-backup-2026-01-01_00-00-00.db'));
      fs.symlinkSync(target, inBackups('link.db'));

      const made = await createBackup();
      const { backups, dir } = await listBackups(t);

      expect(dir).toBe(t.backupsDir);
      expect(dir).toBe(path.join(path.dirname(t.dbPath), 'backups'));
      expect(path.isAbsolute(dir)).toBe(true);
      expect(fs.realpathSync(dir)).toBe(fs.realpathSync(path.join(t.dir, 'backups')));
      expect(backups.map((b) => b.name)).toEqual([
        made.name,
        'mc-backup-2025-01-01_00-00-00-10.db',
        'mc-backup-2025-01-01_00-00-00-2.db',
        'mc-backup-2025-01-01_00-00-00.db',
        'mc-upload-2024-06-01_00-00-00.db',
        'mc-backup-2024-05-01_10-00-00.db',
        'mc-backup-2023-12-31_23-59-59.db',
        'other.db',
      ]);
      for (const item of backups) {
        expect(item).toEqual(
          expect.objectContaining({
            name: expect.any(String),
            size: expect.any(Number),
            created_at: expect.any(Number),
          }),
        );
        expect(item.size).toBe(fs.statSync(inBackups(item.name)).size);
      }
      const byName = Object.fromEntries(backups.map((b) => [b.name, b]));
      expect(byName['mc-backup-2025-01-01_00-00-00-10.db'].created_at).toBe(Date.UTC(2025, 0, 1) / 1000);
      expect(byName['mc-backup-2023-12-31_23-59-59.db'].created_at).toBe(Date.UTC(2023, 11, 31, 23, 59, 59) / 1000);
      expect(byName['mc-upload-2024-06-01_00-00-00.db'].created_at).toBe(Date.UTC(2024, 5, 1) / 1000);
      expect(byName['other.db'].created_at).toBe(Date.UTC(2001, 0, 1) / 1000);
      expect(byName[made.name]).toMatchObject({ size: made.size, created_at: made.created_at });
    });

    it('should list an empty folder as no backups', async () => {
      expect(await listBackups(t)).toMatchObject({ backups: [], dir: t.backupsDir });
    });
  });

  describe('DELETE /api/backup', () => {
    it('should delete by body, then answer 404 for the same name, and audit backup_delete', async () => {
      writeSqliteFile(inBackups(OLD));
      writeSqliteFile(inBackups('mc-backup-2020-01-02_00-00-00.db'));

      await del().send({ name: OLD }).expect(200, { success: true });
      expect(exists(inBackups(OLD))).toBe(false);
      expect(exists(inBackups('mc-backup-2020-01-02_00-00-00.db'))).toBe(true);
      const again = await del().send({ name: OLD }).expect(404);
      expect(again.body).toEqual(ERROR_BODY);
      await del().query({ name: OLD }).expect(404);

      const deleted = await auditEvents(t, 'backup_delete');
      expect(deleted).toHaveLength(1);
      expect(deleted[0]).toMatchObject({ actor: 'api-key', detail: { name: OLD } });
      expect((await listBackups(t)).backups.map((b) => b.name)).toEqual(['mc-backup-2020-01-02_00-00-00.db']);
    });

    it('should delete by ?name= too', async () => {
      writeSqliteFile(inBackups(OLD));
      await del().query({ name: OLD }).expect(200, { success: true });
      expect(exists(inBackups(OLD))).toBe(false);
      await del().query({ name: OLD }).expect(404);
      expect((await auditEvents(t, 'backup_delete')).map((e) => e.detail.name)).toEqual([OLD]);
    });

    it('should delete a real backup made by POST', async () => {
      const backup = await createBackup();
      await del().send({ name: backup.name }).expect(200, { success: true });
      expect(fs.readdirSync(t.backupsDir)).toEqual([]);
      expect((await listBackups(t)).backups).toEqual([]);
    });

    describe('hostile names', () => {
      /**
       * Things a broken name check could reach, planted once in the one app these tests share (each refused request
       * must leave all of it, and the live database, exactly as it was). `<abs>` stands for an absolute path outside.
       */
      beforeAll(async () => {
        shared = await startTestApp();
        const at = (name: string) => path.join(shared!.backupsDir, name);
        writeSqliteFile(at(OLD));
        fs.mkdirSync(at('a'));
        writeSqliteFile(at('a/b.db'));
        fs.writeFileSync(at('a\\b.db'), 'a file whose name has a backslash');
        fs.writeFileSync(at('.hidden.db'), 'hidden');
        fs.writeFileSync(at('x.txt'), 'text');
        fs.writeFileSync(at('mc-backup-2020-01-01_00-00-00.DB'), 'upper case extension');
        writeSqliteFile(path.join(shared.dir, 'outside.db'));
      });

      afterAll(async () => {
        await shared?.close();
        shared = undefined;
      });

      function expectNothingChanged(before: Record<string, string>): void {
        expect(snapshotTree(t.dir, LIVE_SIDE_FILES)).toEqual(before);
        for (const file of LIVE_SIDE_FILES) {
          expect(exists(path.join(t.dir, file))).toBe(true);
        }
      }

      const names: Array<[string, string]> = [
        ['a parent path to the live database', '../mission-control.db'],
        ['an encoded parent path', '..%2Fmission-control.db'],
        ['an absolute path outside', '<abs>'],
        ['a parent path outside', '../outside.db'],
        ['a sub-folder path', 'a/b.db'],
        ['a backslash path', 'a\\b.db'],
        ['a NUL after a real name', `${OLD}\u0000`],
        ['a NUL inside', 'mc-backup\u0000.db'],
        ['a hidden name', '.hidden.db'],
        ['a non-.db name', 'x.txt'],
        ['an upper-case extension', 'mc-backup-2020-01-01_00-00-00.DB'],
        ['dot-dot', '..'],
        ['dot', '.'],
        ['a space', 'bad name.db'],
        ['a non-ASCII name', 'mc-backup-ä.db'],
        ['a trailing slash', `${OLD}/`],
        ['an over-long name', `${'x'.repeat(300)}.db`],
        ['an empty name', ''],
      ];

      it.each(names)(
        'should refuse %s with 400 in the body and in the query, and remove nothing',
        async (_why, raw) => {
          const name = raw === '<abs>' ? path.join(t.dir, 'outside.db') : raw;
          const before = snapshotTree(t.dir, LIVE_SIDE_FILES);

          const byBody = await del().send({ name }).expect(400);
          expect(byBody.body).toEqual(ERROR_BODY);
          expect(JSON.stringify(byBody.body)).not.toContain(t.dir);
          const byQuery = await request(t.http)
            .delete(`/api/backup?name=${encodeURIComponent(name)}`)
            .set('x-api-key', API_KEY)
            .expect(400);
          expect(byQuery.body).toEqual(ERROR_BODY);

          expectNothingChanged(before);
          expect(await auditEvents(t, 'backup_delete')).toEqual([]);
        },
      );

      it.each([
        ['a number', { name: 5 }],
        ['an array holding a real name', { name: [OLD] }],
        ['an object holding a real name', { name: { name: OLD } }],
        ['a boolean', { name: true }],
        ['null', { name: null }],
        ['a whole-body array', [{ name: OLD }]],
        ['an empty object', {}],
      ])('should refuse %s in the JSON body with 400 and remove nothing', async (_why, body) => {
        const before = snapshotTree(t.dir, LIVE_SIDE_FILES);
        const response = await del()
          .send(body as object)
          .expect(400);
        expect(response.body).toEqual(ERROR_BODY);
        expectNothingChanged(before);
      });

      it.each([
        ['a raw encoded parent path', 'name=..%2Fmission-control.db'],
        ['a double-encoded parent path', 'name=..%252Fmission-control.db'],
        ['a raw NUL', `name=${OLD}%00`],
        ['a repeated name (array)', `name=${OLD}&name=${OLD}`],
        ['a bracketed name', `name[]=${OLD}`],
        ['an object-shaped name', `name[x]=${OLD}`],
        ['an empty name', 'name='],
      ])('should refuse %s in the query with 400 and remove nothing', async (_why, query) => {
        const before = snapshotTree(t.dir, LIVE_SIDE_FILES);
        const response = await request(t.http).delete(`/api/backup?${query}`).set('x-api-key', API_KEY).expect(400);
        expect(response.body).toEqual(ERROR_BODY);
        expectNothingChanged(before);
      });

      it('should refuse a JSON string body and a request without any name with 400', async () => {
        const before = snapshotTree(t.dir, LIVE_SIDE_FILES);
        await del().set('Content-Type', 'application/json').send(JSON.stringify(OLD)).expect(400);
        const missing = await del().expect(400);
        expect(missing.body).toEqual(ERROR_BODY);
        expectNothingChanged(before);
      });
    });

    it('should answer 404 for a symlink named like a backup and leave the link and its outside target alone', async () => {
      const outside = outsideFolder();
      const target = path.join(outside, 'secret.db');
      fs.writeFileSync(target, 'known content outside the backups folder');
      fs.symlinkSync(target, inBackups(OLD));
      fs.symlinkSync(path.join(outside, 'missing.db'), inBackups('mc-backup-2020-01-03_00-00-00.db'));
      fs.symlinkSync(outside, inBackups('mc-backup-2020-01-04_00-00-00.db'));

      await del().send({ name: OLD }).expect(404);
      await del().query({ name: OLD }).expect(404);
      await del().send({ name: 'mc-backup-2020-01-03_00-00-00.db' }).expect(404);
      await del().send({ name: 'mc-backup-2020-01-04_00-00-00.db' }).expect(404);

      expect(fs.lstatSync(inBackups(OLD)).isSymbolicLink()).toBe(true);
      expect(fs.readlinkSync(inBackups(OLD))).toBe(target);
      expect(fs.readFileSync(target, 'utf8')).toBe('known content outside the backups folder');
      expect(fs.lstatSync(inBackups('mc-backup-2020-01-03_00-00-00.db')).isSymbolicLink()).toBe(true);
      expect(fs.lstatSync(inBackups('mc-backup-2020-01-04_00-00-00.db')).isSymbolicLink()).toBe(true);
      expect(fs.readdirSync(outside)).toEqual(['secret.db']);
      expect(await auditEvents(t, 'backup_delete')).toEqual([]);
    });

    it('should answer 404 for a folder named like a backup and leave it and its content alone', async () => {
      fs.mkdirSync(inBackups(OLD));
      fs.writeFileSync(path.join(inBackups(OLD), 'inside.txt'), 'inside');
      await del().send({ name: OLD }).expect(404);
      await del().query({ name: OLD }).expect(404);
      expect(fs.statSync(inBackups(OLD)).isDirectory()).toBe(true);
      expect(fs.readFileSync(path.join(inBackups(OLD), 'inside.txt'), 'utf8')).toBe('inside');
    });
  });

  describe('retention', () => {
    it('should keep the newest 3 of 5 backups, audit 2 backup_prune naming the oldest, and spare other files', async () => {
      await setRetention(3);
      writeSqliteFile(inBackups('mc-upload-2020-01-01_00-00-00.db'));
      writeSqliteFile(inBackups('mc-safety-2020-01-01_00-00-00.db'));
      fs.writeFileSync(inBackups('other.db'), 'someone else’s file');
      // A name without a time is dated by its mtime: keep it older than the backups so the list order is fixed.
      fs.utimesSync(inBackups('other.db'), new Date('2020-01-01T00:00:00Z'), new Date('2020-01-01T00:00:00Z'));
      const spared = ['mc-upload-2020-01-01_00-00-00.db', 'mc-safety-2020-01-01_00-00-00.db', 'other.db'];
      const sparedHashes = spared.map((name) => sha256(inBackups(name)));

      const made: string[] = [];
      for (let i = 0; i < 5; i++) {
        made.push((await createBackup()).name);
      }

      expect(new Set(made).size).toBe(5);
      const onDisk = backupDbFiles().filter((name) => name.startsWith('mc-backup-'));
      expect(onDisk).toEqual(made.slice(2).sort());
      const listed = (await listBackups(t)).backups.map((b) => b.name);
      expect(listed.slice(0, 3)).toEqual(made.slice(2).reverse());
      expect(listed.slice(3).sort()).toEqual([...spared].sort());
      expect(spared.map((name) => sha256(inBackups(name)))).toEqual(sparedHashes);

      const pruned = await auditEvents(t, 'backup_prune');
      expect(pruned).toHaveLength(2);
      expect(pruned.map((e) => e.detail.name).sort()).toEqual(made.slice(0, 2).sort());
      expect(pruned[0].detail).toMatchObject({ retention_count: 3 });
    });

    it('should never prune the backup it just made when several are made in the same second', async () => {
      // The same second for every backup: names then differ only by their -N suffix.
      const frozen = new Date(Date.UTC(2026, 2, 1, 12, 0, 0));
      jest.spyOn(t.app.get(Clock), 'now').mockImplementation(() => new Date(frozen));
      await setRetention(3);

      const seen: Array<{ name: string; onDisk: boolean; listedFirst: boolean; pruned: boolean }> = [];
      for (let i = 0; i < 5; i++) {
        const { name } = await createBackup();
        seen.push({
          name,
          onDisk: exists(inBackups(name)),
          listedFirst: (await listBackups(t)).backups[0]?.name === name,
          pruned: (await auditEvents(t, 'backup_prune')).some((e) => e.detail.name === name),
        });
      }
      // The backup just reported exists, is the newest one listed, and was not pruned by its own request.
      expect(seen).toEqual(seen.map(({ name }) => ({ name, onDisk: true, listedFirst: true, pruned: false })));
      const made = seen.map((s) => s.name);
      expect(new Set(made).size).toBe(5);
      expect(backupDbFiles()).toEqual(made.slice(2).sort());
    });

    it('should list a backup made after a deletion in the same second as the newest', async () => {
      const frozen = new Date(Date.UTC(2026, 2, 1, 12, 0, 0));
      jest.spyOn(t.app.get(Clock), 'now').mockImplementation(() => new Date(frozen));
      const first = await createBackup();
      const second = await createBackup();
      await del().send({ name: first.name }).expect(200);
      const third = await createBackup();

      // Had the freed name of that second been handed out again, the new backup would sort below the older one.
      expect((await listBackups(t)).backups.map((b) => b.name)).toEqual([third.name, second.name]);
    });
  });

  describe('rate limit', () => {
    it('should share 10 a minute between POST and DELETE, then answer 429 with Retry-After and a JSON error', async () => {
      await createBackup();
      for (let i = 0; i < 9; i++) {
        await del()
          .send({ name: `mc-backup-2000-01-01_00-00-0${i}.db` })
          .expect(404);
      }
      const blockedPost = await post().expect(429);
      expect(blockedPost.headers['content-type']).toMatch(/^application\/json/);
      expect(blockedPost.body).toEqual(ERROR_BODY);
      const retryAfter = blockedPost.headers['retry-after'];
      expect(retryAfter).toMatch(/^\d+$/);
      expect(Number(retryAfter)).toBeGreaterThan(0);
      expect(Number(retryAfter)).toBeLessThanOrEqual(60);
      // A refused POST makes no backup.
      expect(backupDbFiles()).toHaveLength(1);

      const blockedDelete = await del().send({ name: OLD }).expect(429);
      expect(blockedDelete.body).toEqual(ERROR_BODY);
      expect(blockedDelete.headers['retry-after']).toMatch(/^\d+$/);
      // Reading is not limited.
      await request(t.http).get('/api/backup').set('x-api-key', API_KEY).expect(200);
    });

    it('should give another identity (the admin cookie) its own budget', async () => {
      for (let i = 0; i < 10; i++) {
        await del()
          .send({ name: `mc-backup-2000-01-01_00-00-0${i}.db` })
          .expect(404);
      }
      await del().send({ name: OLD }).expect(429);

      const cookie = await loginCookie(t.http);
      const asAdmin = () => request(t.http).delete('/api/backup').set('Cookie', cookie);
      for (let i = 0; i < 10; i++) {
        await asAdmin()
          .send({ name: `mc-backup-2001-01-01_00-00-0${i}.db` })
          .expect(404);
      }
      const blocked = await asAdmin().send({ name: OLD }).expect(429);
      expect(blocked.headers['retry-after']).toMatch(/^\d+$/);
      // The key is still limited on its own.
      await del().send({ name: OLD }).expect(429);
    });
  });
});

describe('Backups start-up (e2e)', () => {
  let dir: string;
  let t: TestApp | undefined;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'mc-e2e-leftovers-'));
    t = undefined;
  });

  afterEach(async () => {
    if (t) {
      await t.close();
    } else {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('should remove temp files of an interrupted backup at start-up, keep real backups, and tighten the folder', async () => {
    const backups = path.join(dir, 'backups');
    fs.mkdirSync(backups, { mode: 0o755 });
    fs.chmodSync(backups, 0o755);
    const tmp = tempFileName();
    const tmpWithWal = tempFileName();
    fs.writeFileSync(path.join(backups, tmp), 'half a copy');
    fs.writeFileSync(path.join(backups, `${tmp}-journal`), 'journal');
    fs.writeFileSync(path.join(backups, tmpWithWal), 'half a copy');
    fs.writeFileSync(path.join(backups, `${tmpWithWal}-wal`), 'wal');
    fs.writeFileSync(path.join(backups, `${tmpWithWal}-shm`), 'shm');
    writeSqliteFile(path.join(backups, OLD));
    const kept = sha256(path.join(backups, OLD));
    // Look-alikes that are not our temp files stay.
    fs.writeFileSync(path.join(backups, '.mc-tmp-not-hex.db.part'), 'someone else');
    fs.mkdirSync(path.join(backups, tempFileName()));
    const outsideTarget = path.join(dir, 'outside.txt');
    fs.writeFileSync(outsideTarget, 'outside');
    const link = tempFileName();
    fs.symlinkSync(outsideTarget, path.join(backups, link));
    const survivors = ['.mc-tmp-not-hex.db.part', link, OLD];
    const folderLike = fs.readdirSync(backups).find((n) => fs.lstatSync(path.join(backups, n)).isDirectory());

    t = await startTestApp({}, dir);

    expect(t.backupsDir).toBe(backups);
    expect(fs.readdirSync(backups).sort()).toEqual([...survivors, folderLike!].sort());
    expect(sha256(path.join(backups, OLD))).toBe(kept);
    expect(fs.readFileSync(outsideTarget, 'utf8')).toBe('outside');
    expect(fs.statSync(backups).mode & 0o777).toBe(0o700);
    expect((await listBackups(t)).backups.map((b) => b.name)).toEqual([OLD]);
  });
});
