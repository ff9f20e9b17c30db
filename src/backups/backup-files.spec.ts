import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { BackupFiles, InvalidBackupNameError } from './backup-files';
import { BACKUP_PREFIX, SAFETY_PREFIX, UPLOAD_PREFIX, formatBackupName } from './backup-name';
import { runSnapshotWorker } from '../sqlite/snapshot';

// Each job starts a fresh worker or child process; generous on a loaded machine.
const SLOW = 60_000;
const NOW = new Date(Date.UTC(2026, 0, 1, 3, 0, 0));

let root: string;
let backupsDir: string;
let sourcePath: string;
let source: Database.Database | undefined;
let writer: ChildProcess | undefined;

function openWalDb(file: string): Database.Database {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE IF NOT EXISTS items(id INTEGER PRIMARY KEY, label TEXT NOT NULL, pad BLOB)');
  return db;
}

async function sha256(file: string): Promise<string> {
  return createHash('sha256')
    .update(await fs.readFile(file))
    .digest('hex');
}

async function exists(file: string): Promise<boolean> {
  return fs.lstat(file).then(
    () => true,
    () => false,
  );
}

async function dbFilesIn(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).filter((n) => n.endsWith('.db')).sort();
}

function readCopy<T>(file: string, fn: (db: Database.Database) => T): T {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** True when chmod 0o500 really stops this process from creating files (false for root). */
async function readOnlyDirsAreEnforced(): Promise<boolean> {
  const probe = path.join(root, 'probe');
  await fs.mkdir(probe);
  await fs.chmod(probe, 0o500);
  try {
    await fs.writeFile(path.join(probe, 'x'), 'x');
    return false;
  } catch {
    return true;
  } finally {
    await fs.chmod(probe, 0o700);
  }
}

beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'mc-backup-files-'));
  backupsDir = path.join(root, 'backups');
  sourcePath = path.join(root, 'live.db');
});

afterEach(async () => {
  if (writer && writer.exitCode === null && writer.signalCode === null) {
    const w = writer;
    await new Promise<void>((resolve) => {
      w.once('exit', () => resolve());
      w.kill('SIGKILL');
    });
  }
  writer = undefined;
  source?.close();
  source = undefined;
  await fs.chmod(backupsDir, 0o700).catch(() => undefined);
  await fs.rm(root, { recursive: true, force: true });
});

describe('BackupFiles.snapshot', () => {
  it(
    'copies a WAL database including a row committed just before the call',
    async () => {
      source = openWalDb(sourcePath);
      source.prepare('INSERT INTO items(label) VALUES (?)').run('old');
      source.pragma('wal_checkpoint(TRUNCATE)');
      source.prepare('INSERT INTO items(label) VALUES (?)').run('just-before');
      // The last row must live only in the WAL, or the test would not show that the WAL is read.
      expect((await fs.stat(`${sourcePath}-wal`)).size).toBeGreaterThan(0);

      const files = new BackupFiles(backupsDir);
      await files.ensureDir();
      const result = await files.snapshot(sourcePath, BACKUP_PREFIX, NOW);

      expect(result.name).toBe('mc-backup-2026-01-01_03-00-00.db');
      expect(result.createdAtMs).toBe(NOW.getTime());
      const copy = path.join(backupsDir, result.name);
      expect(result.size).toBe((await fs.stat(copy)).size);

      const { labels, integrity, mode } = readCopy(copy, (db) => ({
        labels: db
          .prepare('SELECT label FROM items ORDER BY id')
          .all()
          .map((r) => (r as { label: string }).label),
        integrity: db.pragma('integrity_check', { simple: true }),
        mode: db.pragma('journal_mode', { simple: true }),
      }));
      expect(labels).toEqual(['old', 'just-before']);
      expect(integrity).toBe('ok');
      expect(mode).toBe('delete');
      expect(await exists(`${copy}-wal`)).toBe(false);
      expect(await exists(`${copy}-shm`)).toBe(false);
      expect(await exists(`${copy}-journal`)).toBe(false);
      // Header bytes 18/19 are 1 for rollback-journal files and 2 for WAL files.
      const header = (await fs.readFile(copy)).subarray(18, 20);
      expect([...header]).toEqual([1, 1]);
      expect(await fs.readdir(backupsDir)).toEqual([result.name]);
    },
    SLOW,
  );

  it(
    'creates the copy with mode 0600 inside a 0700 folder',
    async () => {
      source = openWalDb(sourcePath);
      const files = new BackupFiles(backupsDir);
      await files.ensureDir();
      const { name } = await files.snapshot(sourcePath, BACKUP_PREFIX, NOW);
      expect((await fs.stat(backupsDir)).mode & 0o777).toBe(0o700);
      expect((await fs.stat(path.join(backupsDir, name))).mode & 0o777).toBe(0o600);
    },
    SLOW,
  );

  it('ensureDir tightens an existing folder to 0700', async () => {
    await fs.mkdir(backupsDir, { mode: 0o755 });
    await fs.chmod(backupsDir, 0o755);
    await new BackupFiles(backupsDir).ensureDir();
    expect((await fs.stat(backupsDir)).mode & 0o777).toBe(0o700);
  });

  it(
    'keeps both of two snapshots taken in the same second',
    async () => {
      source = openWalDb(sourcePath);
      source.prepare('INSERT INTO items(label) VALUES (?)').run('first');
      const files = new BackupFiles(backupsDir);
      await files.ensureDir();

      const a = await files.snapshot(sourcePath, BACKUP_PREFIX, NOW);
      const aHash = await sha256(path.join(backupsDir, a.name));
      source.prepare('INSERT INTO items(label) VALUES (?)').run('second');
      const b = await files.snapshot(sourcePath, BACKUP_PREFIX, NOW);

      expect(a.name).toBe('mc-backup-2026-01-01_03-00-00.db');
      expect(b.name).toBe('mc-backup-2026-01-01_03-00-00-2.db');
      expect(await sha256(path.join(backupsDir, a.name))).toBe(aHash);
      const count = (name: string): number =>
        readCopy(path.join(backupsDir, name), (db) => {
          expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
          return (db.prepare('SELECT count(*) AS n FROM items').get() as { n: number }).n;
        });
      expect(count(a.name)).toBe(1);
      expect(count(b.name)).toBe(2);
    },
    SLOW,
  );

  it(
    'gives concurrent snapshots in the same second distinct names',
    async () => {
      source = openWalDb(sourcePath);
      const files = new BackupFiles(backupsDir);
      await files.ensureDir();
      const results = await Promise.all([1, 2, 3].map(() => files.snapshot(sourcePath, SAFETY_PREFIX, NOW)));
      expect(results.map((r) => r.name).sort()).toEqual([
        'mc-safety-2026-01-01_03-00-00-2.db',
        'mc-safety-2026-01-01_03-00-00-3.db',
        'mc-safety-2026-01-01_03-00-00.db',
      ]);
      expect(await dbFilesIn(backupsDir)).toHaveLength(3);
    },
    SLOW,
  );

  it(
    'never overwrites an existing file or follows a symlink with the would-be name',
    async () => {
      source = openWalDb(sourcePath);
      await fs.mkdir(backupsDir);
      const taken = path.join(backupsDir, formatBackupName(BACKUP_PREFIX, NOW, 1));
      await fs.writeFile(taken, 'precious bytes');
      const outside = path.join(root, 'outside-target.db');
      await fs.symlink(outside, path.join(backupsDir, formatBackupName(BACKUP_PREFIX, NOW, 2)));

      const result = await new BackupFiles(backupsDir).snapshot(sourcePath, BACKUP_PREFIX, NOW);

      expect(result.name).toBe('mc-backup-2026-01-01_03-00-00-3.db');
      expect(await fs.readFile(taken, 'utf8')).toBe('precious bytes');
      expect(await exists(outside)).toBe(false);
      expect((await fs.lstat(path.join(backupsDir, 'mc-backup-2026-01-01_03-00-00-2.db'))).isSymbolicLink()).toBe(true);
    },
    SLOW,
  );

  it(
    'never overwrites a file that takes the chosen name after the scan (a real collision at publish time)',
    async () => {
      source = openWalDb(sourcePath);
      await fs.mkdir(backupsDir);
      const files = new BackupFiles(backupsDir);
      // Another writer takes the very name the scan found free, between the scan and the publish: the link must
      // fail on it and move on. Publishing by delete-then-link (or rename) would replace these bytes.
      const seams = files as unknown as { highestSeq: (prefix: string, now: Date) => Promise<number> };
      const scan = seams.highestSeq.bind(files);
      let planted = '';
      seams.highestSeq = async (prefix, now) => {
        const highest = await scan(prefix, now);
        planted = path.join(backupsDir, formatBackupName(prefix, now, highest + 1));
        await fs.writeFile(planted, 'precious bytes');
        return highest;
      };

      const result = await files.snapshot(sourcePath, BACKUP_PREFIX, NOW);

      expect(path.basename(planted)).toBe('mc-backup-2026-01-01_03-00-00.db');
      expect(await fs.readFile(planted, 'utf8')).toBe('precious bytes');
      expect(result.name).toBe('mc-backup-2026-01-01_03-00-00-2.db');
      expect((await fs.stat(path.join(backupsDir, result.name))).size).toBe(result.size);
    },
    SLOW,
  );

  it(
    'leaves nothing behind when the source is not a database',
    async () => {
      await fs.writeFile(sourcePath, 'this is not a database, just text that is long enough to have a header');
      const files = new BackupFiles(backupsDir);
      await files.ensureDir();
      await expect(files.snapshot(sourcePath, BACKUP_PREFIX, NOW)).rejects.toThrow(/not a database/);
      expect(await fs.readdir(backupsDir)).toEqual([]);
    },
    SLOW,
  );

  it(
    'leaves nothing behind when the source does not exist',
    async () => {
      const files = new BackupFiles(backupsDir);
      await files.ensureDir();
      await expect(files.snapshot(path.join(root, 'missing.db'), BACKUP_PREFIX, NOW)).rejects.toThrow();
      expect(await exists(path.join(root, 'missing.db'))).toBe(false);
      expect(await fs.readdir(backupsDir)).toEqual([]);
    },
    SLOW,
  );

  it(
    'leaves nothing behind when publishing fails',
    async () => {
      source = openWalDb(sourcePath);
      const files = new BackupFiles(backupsDir);
      await files.ensureDir();
      // The module object itself: the `import * as` namespaces here and in backup-files are read-through views.
      const realFs = jest.requireActual<typeof import('node:fs/promises')>('node:fs/promises');
      const link = jest
        .spyOn(realFs, 'link')
        .mockRejectedValue(Object.assign(new Error('link refused'), { code: 'EPERM' }));
      try {
        await expect(files.snapshot(sourcePath, BACKUP_PREFIX, NOW)).rejects.toThrow('link refused');
      } finally {
        link.mockRestore();
      }
      expect(await fs.readdir(backupsDir)).toEqual([]);
    },
    SLOW,
  );

  it(
    'leaves nothing behind when aborted while the worker is copying',
    async () => {
      // Large enough (about 64 MB) that the copy is still running when the abort comes.
      source = openWalDb(sourcePath);
      const fill = source.prepare('INSERT INTO items(label, pad) VALUES (?, randomblob(65536))');
      source
        .transaction(() => {
          for (let i = 0; i < 1000; i++) {
            fill.run(`row ${i}`);
          }
        })
        .immediate();
      const files = new BackupFiles(backupsDir);
      await files.ensureDir();
      const controller = new AbortController();
      let settled = false;
      const pending = files.snapshot(sourcePath, BACKUP_PREFIX, NOW, { signal: controller.signal });
      pending.then(
        () => (settled = true),
        () => (settled = true),
      );
      // Abort only once the worker has written pages into the temp file: the abort must stop a running copy.
      const copying = async (): Promise<boolean> => {
        for (const name of await fs.readdir(backupsDir)) {
          if (name.startsWith('.mc-tmp-') && (await fs.stat(path.join(backupsDir, name))).size > 0) {
            return true;
          }
        }
        return false;
      };
      while (!settled && !(await copying())) {
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect(settled).toBe(false);
      controller.abort();
      await expect(pending).rejects.toThrow('Snapshot aborted');
      expect(await fs.readdir(backupsDir)).toEqual([]);
    },
    SLOW,
  );

  // Permissions do not bind root (CI runs as root): there the test is reported as skipped, never passed unseen.
  (process.getuid?.() === 0 ? it.skip : it)(
    'fails cleanly in a read-only backups folder (skipped as root)',
    async () => {
      source = openWalDb(sourcePath);
      const files = new BackupFiles(backupsDir);
      await files.ensureDir();
      expect(await readOnlyDirsAreEnforced()).toBe(true);
      await fs.chmod(backupsDir, 0o500);
      await expect(files.snapshot(sourcePath, BACKUP_PREFIX, NOW)).rejects.toThrow();
      await fs.chmod(backupsDir, 0o700);
      expect(await fs.readdir(backupsDir)).toEqual([]);
    },
    SLOW,
  );

  it(
    'completes while another process writes every few milliseconds, with a consistent copy',
    async () => {
      source = new Database(sourcePath);
      source.pragma('journal_mode = WAL');
      source.exec(`
        CREATE TABLE filler(id INTEGER PRIMARY KEY, b BLOB);
        CREATE TABLE log(id INTEGER PRIMARY KEY, v TEXT);
        CREATE TABLE counter(n INTEGER NOT NULL);
        INSERT INTO counter VALUES (0);
      `);
      const fill = source.prepare('INSERT INTO filler(b) VALUES (randomblob(1000))');
      source
        .transaction(() => {
          for (let i = 0; i < 30_000; i++) {
            fill.run();
          }
        })
        .immediate();
      expect((await fs.stat(sourcePath)).size + (await fs.stat(`${sourcePath}-wal`)).size).toBeGreaterThan(30e6);

      // Each write is one transaction touching two tables; a torn or mixed copy breaks count(log) = counter.n.
      const writerCode = `
        const Database = require(${JSON.stringify(require.resolve('better-sqlite3'))});
        const db = new Database(${JSON.stringify(sourcePath)}, { timeout: 10000 });
        const add = db.prepare("INSERT INTO log(v) VALUES (hex(randomblob(100)))");
        const bump = db.prepare('UPDATE counter SET n = n + 1');
        const tx = db.transaction(() => { add.run(); bump.run(); });
        let n = 0;
        // A checkpoint after every write: it must never move a frame into the main file under the copy's reader.
        setInterval(() => { tx(); db.pragma('wal_checkpoint(PASSIVE)'); n += 1; if (n === 1) { process.stdout.write('ready\\n'); } }, 5);
      `;
      const child = spawn(process.execPath, ['-e', writerCode], { stdio: ['ignore', 'pipe', 'inherit'] });
      writer = child;
      await new Promise<void>((resolve, reject) => {
        let out = '';
        child.stdout?.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('ready')) {
            resolve();
          }
        });
        child.once('exit', (code) => reject(new Error(`writer exited early with code ${code}`)));
      });

      const counter = (): number => (source?.prepare('SELECT n FROM counter').get() as { n: number }).n;
      const before = counter();
      const files = new BackupFiles(backupsDir);
      await files.ensureDir();
      const result = await files.snapshot(sourcePath, BACKUP_PREFIX, NOW);
      const after = counter();
      expect(child.exitCode).toBeNull();
      // Otherwise the writer never overlapped the copy and this test proved nothing.
      expect(after).toBeGreaterThan(before);

      const copy = readCopy(path.join(backupsDir, result.name), (db) => ({
        integrity: db.pragma('integrity_check', { simple: true }),
        n: (db.prepare('SELECT n FROM counter').get() as { n: number }).n,
        logRows: (db.prepare('SELECT count(*) AS c FROM log').get() as { c: number }).c,
        fillerRows: (db.prepare('SELECT count(*) AS c FROM filler').get() as { c: number }).c,
      }));
      expect(copy.integrity).toBe('ok');
      expect(copy.fillerRows).toBe(30_000);
      expect(copy.logRows).toBe(copy.n);
      expect(copy.n).toBeGreaterThanOrEqual(before);
      expect(copy.n).toBeLessThanOrEqual(after);
      // A pinned read copies in one go; the backup API needs its probe step plus one.
      expect(result.steps).toBeLessThanOrEqual(2);
    },
    SLOW,
  );
});

describe('runSnapshotWorker', () => {
  it(
    'copies in one backup step after the initial probe and reports the copy',
    async () => {
      source = openWalDb(sourcePath);
      const insert = source.prepare('INSERT INTO items(label, pad) VALUES (?, randomblob(4000))');
      source
        .transaction(() => {
          for (let i = 0; i < 500; i++) {
            insert.run(`row-${i}`);
          }
        })
        .immediate();
      await fs.mkdir(backupsDir);
      const dest = path.join(backupsDir, 'raw-copy');
      const result = await runSnapshotWorker(sourcePath, dest);
      expect(result.ok).toBe(true);
      expect(result.method).toBe('backup-api');
      expect(result.quickCheck).toBe('ok');
      expect(result.steps).toBe(2);
      expect(result.pages).toBeGreaterThan(500);
      expect(result.size).toBe(result.pages * result.pageSize);
      expect(result.size).toBe((await fs.stat(dest)).size);
    },
    SLOW,
  );
});

describe('BackupFiles.list', () => {
  it('lists only valid regular .db files, newest first', async () => {
    const files = new BackupFiles(backupsDir);
    await files.ensureDir();
    const t = (s: number): Date => new Date(Date.UTC(2026, 0, 1, 3, 0, s));
    const names = [
      formatBackupName(BACKUP_PREFIX, t(0), 1),
      formatBackupName(BACKUP_PREFIX, t(0), 2),
      formatBackupName(UPLOAD_PREFIX, t(5), 1),
      formatBackupName(SAFETY_PREFIX, t(3), 1),
    ];
    for (const name of names) {
      await fs.writeFile(path.join(backupsDir, name), name);
    }
    // A foreign but valid name is dated by its mtime.
    await fs.writeFile(path.join(backupsDir, 'other.db'), 'x');
    const otherTime = new Date(Date.UTC(2025, 5, 1));
    await fs.utimes(path.join(backupsDir, 'other.db'), otherTime, otherTime);

    await fs.writeFile(path.join(root, 'target.db'), 'target');
    await fs.symlink(path.join(root, 'target.db'), path.join(backupsDir, 'x.db'));
    await fs.mkdir(path.join(backupsDir, 'y.db'));
    await fs.writeFile(path.join(backupsDir, '.mc-tmp-0123456789abcdef0123.db.part'), 'partial');
    await fs.writeFile(path.join(backupsDir, '.hidden.db'), 'hidden');
    await fs.writeFile(path.join(backupsDir, 'notes.txt'), 'notes');
    await fs.writeFile(path.join(backupsDir, 'z.db-journal'), 'journal');

    const listed = await files.list();
    expect(listed.map((f) => f.name)).toEqual([
      'mc-upload-2026-01-01_03-00-05.db',
      'mc-safety-2026-01-01_03-00-03.db',
      'mc-backup-2026-01-01_03-00-00-2.db',
      'mc-backup-2026-01-01_03-00-00.db',
      'other.db',
    ]);
    expect(listed[0]).toMatchObject({
      kind: 'upload',
      seq: 1,
      createdAtMs: t(5).getTime(),
      size: Buffer.byteLength(names[2]),
    });
    expect(listed[4]).toMatchObject({ kind: null, createdAtMs: otherTime.getTime() });
  });

  it('returns an empty list for a missing folder', async () => {
    expect(await new BackupFiles(path.join(root, 'nope')).list()).toEqual([]);
  });

  it('handles thousands of files', async () => {
    const files = new BackupFiles(backupsDir);
    await files.ensureDir();
    const base = Date.UTC(2026, 0, 1);
    const count = 3000;
    const names = Array.from({ length: count }, (_, i) =>
      formatBackupName(BACKUP_PREFIX, new Date(base + i * 1000), 1),
    );
    for (let i = 0; i < names.length; i += 200) {
      await Promise.all(names.slice(i, i + 200).map((n) => fs.writeFile(path.join(backupsDir, n), '')));
    }
    const listed = await files.list();
    expect(listed).toHaveLength(count);
    expect(listed.map((f) => f.name)).toEqual([...names].reverse());
  });
});

describe('BackupFiles.remove / statBackup / resolveInside', () => {
  let files: BackupFiles;

  beforeEach(async () => {
    files = new BackupFiles(backupsDir);
    await files.ensureDir();
  });

  it('removes a regular backup', async () => {
    await fs.writeFile(path.join(backupsDir, 'a.db'), 'a');
    expect(await files.statBackup('a.db')).toMatchObject({ size: 1 });
    expect(await files.remove('a.db')).toBe('removed');
    expect(await exists(path.join(backupsDir, 'a.db'))).toBe(false);
    expect(await files.statBackup('a.db')).toBeNull();
    expect(await files.remove('a.db')).toBe('absent');
  });

  it('refuses a symlink and leaves its target alone', async () => {
    const target = path.join(root, 'target.db');
    await fs.writeFile(target, 'target');
    await fs.symlink(target, path.join(backupsDir, 'x.db'));
    expect(await files.statBackup('x.db')).toBeNull();
    expect(await files.remove('x.db')).toBe('not_regular');
    expect(await fs.readFile(target, 'utf8')).toBe('target');
    expect((await fs.lstat(path.join(backupsDir, 'x.db'))).isSymbolicLink()).toBe(true);
  });

  it('refuses a folder', async () => {
    await fs.mkdir(path.join(backupsDir, 'y.db'));
    await fs.writeFile(path.join(backupsDir, 'y.db', 'inner'), 'inner');
    expect(await files.statBackup('y.db')).toBeNull();
    expect(await files.remove('y.db')).toBe('not_regular');
    expect(await fs.readFile(path.join(backupsDir, 'y.db', 'inner'), 'utf8')).toBe('inner');
  });

  it.each(['../live.db', '/etc/passwd', 'a/b.db', '.hidden.db', 'x.txt', '', '..', 'x\0.db'])(
    'refuses the name %p',
    async (name) => {
      await fs.writeFile(sourcePath, 'live');
      expect(() => files.resolveInside(name)).toThrow(InvalidBackupNameError);
      await expect(files.remove(name)).rejects.toThrow(InvalidBackupNameError);
      await expect(files.statBackup(name)).rejects.toThrow(InvalidBackupNameError);
      expect(await fs.readFile(sourcePath, 'utf8')).toBe('live');
    },
  );

  it('resolves a valid name to a direct child of the folder', () => {
    expect(files.resolveInside('a.db')).toBe(path.join(path.resolve(backupsDir), 'a.db'));
  });
});

describe('BackupFiles.removeLeftovers', () => {
  it('removes temp files and their SQLite siblings only', async () => {
    const files = new BackupFiles(backupsDir);
    await files.ensureDir();
    const tmp = '.mc-tmp-0123456789abcdef01234567.db.part';
    const ours = [tmp, `${tmp}-journal`, `${tmp}-wal`, `${tmp}-shm`];
    const others = [
      'mc-backup-2026-01-01_03-00-00.db',
      'x.db-journal',
      '.mc-tmp-notours.db.part',
      '.mc-tmp-0123456789abcdef01234567.db',
      '.other-hidden',
      'notes.txt',
    ];
    for (const name of [...ours, ...others]) {
      await fs.writeFile(path.join(backupsDir, name), name);
    }
    const outside = path.join(root, 'outside');
    await fs.writeFile(outside, 'outside');
    const linkName = '.mc-tmp-fedcba9876543210fedcba98.db.part';
    await fs.symlink(outside, path.join(backupsDir, linkName));

    const removed = await files.removeLeftovers();

    expect(removed.sort()).toEqual([...ours].sort());
    expect((await fs.readdir(backupsDir)).sort()).toEqual([...others, linkName].sort());
    expect(await fs.readFile(outside, 'utf8')).toBe('outside');
  });

  it('returns nothing for a missing folder', async () => {
    expect(await new BackupFiles(path.join(root, 'nope')).removeLeftovers()).toEqual([]);
  });
});
