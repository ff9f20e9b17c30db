import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import request from 'supertest';
import { sha256 } from './helpers/backup-fixtures';
import { compiledBuild, runCli, runNpmCli } from './helpers/cli-runner';
import { API_KEY, createUser, startTestApp, type TestApp } from './helpers/test-app';

jest.setTimeout(60_000);

let mainJs: string;
const folders: string[] = [];
const running: TestApp[] = [];

beforeAll(() => {
  ({ mainJs } = compiledBuild());
}, 120_000);

afterEach(async () => {
  while (running.length > 0) {
    await running.pop()?.close({ keepFiles: true });
  }
  while (folders.length > 0) {
    fs.rmSync(folders.pop() as string, { recursive: true, force: true });
  }
});

/** A database made and migrated by the real app, which is then stopped (the CLI's usual situation). */
async function preparedDatabase(setup?: (t: TestApp) => Promise<void>): Promise<{ dir: string; dbPath: string }> {
  const t = await startTestApp();
  folders.push(t.dir);
  await setup?.(t);
  await t.close({ keepFiles: true });
  return { dir: t.dir, dbPath: t.dbPath };
}

function cli(dbPath: string, ...args: string[]): ReturnType<typeof runCli> {
  return runCli(mainJs, dbPath, args);
}

/** Hashed by another process when it is a live database file (see live-db-tripwire.ts). */
function fileSha(file: string): string {
  return sha256(file);
}

function backupsIn(dir: string): string[] {
  return fs.readdirSync(path.join(dir, 'backups')).sort();
}

function query<T>(dbPath: string, sql: string, ...params: unknown[]): T[] {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

function newestBackup(dir: string): string {
  const name = backupsIn(dir)
    .filter((n) => n.startsWith('mc-backup-'))
    .pop();
  if (name === undefined) {
    throw new Error('no backup');
  }
  return name;
}

/** Flips bytes in the middle of a page so integrity_check (and the checksum) must notice. */
function corrupt(file: string): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const pageSize = 4096;
    const pages = Math.floor(fs.fstatSync(fd).size / pageSize);
    for (let page = 1; page < pages; page++) {
      fs.writeSync(fd, Buffer.alloc(64, 0xa5), 0, 64, page * pageSize + 100);
    }
  } finally {
    fs.closeSync(fd);
  }
}

describe('mission-control-backups CLI', () => {
  describe('list, create, prune', () => {
    it('should create, list (table and --json), apply retention and audit as cli', async () => {
      const { dir, dbPath } = await preparedDatabase();

      const empty = cli(dbPath, 'backups', 'list');
      expect(empty.status).toBe(0);
      expect(empty.stdout).toContain('No backups in');

      const created = cli(dbPath, 'backups', 'create');
      expect(created.status).toBe(0);
      expect(created.stdout).toMatch(/Created mc-backup-\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d(-\d+)?\.db \(.+\) in \d+/);
      const first = newestBackup(dir);

      const table = cli(dbPath, 'backups', 'list');
      expect(table.status).toBe(0);
      expect(table.stdout).toMatch(/NAME\s+KIND\s+SIZE\s+CREATED \(UTC\)\s+SHA256/);
      expect(table.stdout).toContain(first);

      const json = cli(dbPath, 'backups', 'list', '--json');
      expect(json.status).toBe(0);
      const listing = JSON.parse(json.stdout) as { backups: { name: string; kind: string; sha256: string }[] };
      expect(listing.backups).toEqual([expect.objectContaining({ name: first, kind: 'manual' })]);
      expect(listing.backups[0].sha256).toMatch(/^[0-9a-f]{64}$/);

      // Retention as the service applies it: a second backup with a count of 1 prunes the first.
      const db = new Database(dbPath);
      db.prepare('INSERT OR REPLACE INTO settings (key, value, updated_by, updated_at) VALUES (?, ?, ?, ?)').run(
        'general.backup_retention_count',
        '1',
        'test',
        0,
      );
      db.close();
      const second = cli(dbPath, 'backups', 'create');
      expect(second.status).toBe(0);
      expect(second.stdout).toContain(`Pruned ${first}`);
      expect(backupsIn(dir)).toEqual([newestBackup(dir)]);

      const prune = cli(dbPath, 'backups', 'prune');
      expect(prune.status).toBe(0);
      expect(prune.stdout).toContain('Nothing to prune (retention count 1');

      // The CLI's own connections leave (checked before this test's own read-only reads, which do leave them) nothing beside the database.
      expect(fs.readdirSync(dir).sort()).toEqual(['backups', 'mission-control.db']);
      const audit = query<{ action: string }>(dbPath, "SELECT action FROM audit_log WHERE actor = 'cli' ORDER BY id");
      expect(audit.map((a) => a.action)).toEqual(['backup_create', 'backup_create', 'backup_prune']);
    });

    it('should work through `npm run cli` (the compiled CLI, rebuilt only when dist/ is stale)', async () => {
      const { dbPath } = await preparedDatabase();
      const run = runNpmCli(dbPath, ['backups', 'list', '--json']);
      // A checkout whose dist/ is stale builds first, saying so on stderr; stdout stays the JSON alone.
      expect(run.stderr.replace(/^Building \(.*\) …\n/, '')).toBe('');
      expect(run.status).toBe(0);
      expect(JSON.parse(run.stdout)).toEqual({ backups: [], dir: expect.stringMatching(/backups$/) });
    }, 180_000); // a fresh checkout builds dist/ first (tens of seconds on a busy machine)
  });

  describe('users reset-password', () => {
    it("should set a new random password (printed once), end the user's sessions and audit it", async () => {
      const { dbPath } = await preparedDatabase(async (t) => {
        await request(t.http).post('/api/auth/login').send({ username: 'admin', password: 'admin-password-123' });
      });
      expect(query(dbPath, 'SELECT id FROM sessions')).toHaveLength(1);
      const run = cli(dbPath, 'users', 'reset-password', 'admin');
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      const password = /New password for "admin": (\S+)/.exec(run.stdout)?.[1] ?? '';
      expect(password.length).toBeGreaterThanOrEqual(20);
      expect(run.stdout).toContain('1 session(s) ended');
      expect(query(dbPath, 'SELECT id FROM sessions')).toHaveLength(0);
      expect(
        query<{ actor: string; detail: string }>(
          dbPath,
          "SELECT actor, detail FROM audit_log WHERE action = 'password_reset'",
        ),
      ).toEqual([{ actor: 'cli', detail: expect.stringContaining('"username":"admin"') }]);

      // The new password works, the old one does not (AUTH_USER/AUTH_PASS only matter when there is no user).
      const t = await startTestApp({}, path.dirname(dbPath));
      running.push(t);
      await request(t.http)
        .post('/api/auth/login')
        .send({ username: 'admin', password: 'admin-password-123' })
        .expect(401);
      await request(t.http).post('/api/auth/login').send({ username: 'admin', password }).expect(200);
    });

    it('should take the password from stdin with --password-stdin, apply the 12-character rule, and name unknown users', async () => {
      const { dbPath } = await preparedDatabase();
      const set = runCli(
        mainJs,
        dbPath,
        ['users', 'reset-password', 'admin', '--password-stdin'],
        {},
        'chosen-passphrase-1\n',
      );
      expect({ status: set.status, stderr: set.stderr }).toEqual({ status: 0, stderr: '' });
      expect(set.stdout).not.toContain('chosen-passphrase-1');
      const short = runCli(mainJs, dbPath, ['users', 'reset-password', 'admin', '--password-stdin'], {}, 'short\n');
      expect(short.status).toBe(2);
      expect(short.stderr).toContain('the password must have 12-1024 characters');
      const ghost = cli(dbPath, 'users', 'reset-password', 'ghost');
      expect(ghost.status).toBe(1);
      expect(ghost.stderr).toContain('No user named "ghost"');

      const t = await startTestApp({}, path.dirname(dbPath));
      running.push(t);
      await request(t.http)
        .post('/api/auth/login')
        .send({ username: 'admin', password: 'chosen-passphrase-1' })
        .expect(200);
    });
  });

  describe('usage', () => {
    it.each([
      [['backups', 'bogus']],
      [['bogus']],
      [[]],
      [['backups']],
      [['backups', 'verify']],
      [['backups', 'restore']],
      [['backups', 'list', '--nope']],
      [['backups', 'list', 'extra']],
      [['users']],
      [['users', 'bogus']],
      [['users', 'reset-password']],
      [['backups', 'verify', '../escape.db']],
      [['backups', 'restore', 'mc-backup-2026-01-01_00-00-00.db']],
    ])('should exit 2 for %j', (args) => {
      const run = runCli(mainJs, '/nonexistent/mc.db', args);
      expect(run.status).toBe(2);
      expect(run.stderr).not.toBe('');
    });

    it('should exit 0 for --help', () => {
      const run = runCli(mainJs, '/nonexistent/mc.db', ['backups', 'restore', '--help']);
      expect(run.status).toBe(0);
      expect(run.stdout).toContain('--yes');
    });
  });

  describe('verify', () => {
    it('should exit 0 for a sound backup and 1 for a corrupted one', async () => {
      const { dir, dbPath } = await preparedDatabase();
      expect(cli(dbPath, 'backups', 'create').status).toBe(0);
      const name = newestBackup(dir);

      const good = cli(dbPath, 'backups', 'verify', name);
      expect(good.status).toBe(0);
      expect(good.stdout).toContain('integrity: ok');
      expect(good.stdout).toContain('checksum:  match');

      corrupt(path.join(dir, 'backups', name));
      const bad = cli(dbPath, 'backups', 'verify', name);
      expect(bad.status).toBe(1);
      expect(bad.stdout).toContain('checksum:  mismatch');
      expect(bad.stdout).toContain('result:    FAILED');

      const missing = cli(dbPath, 'backups', 'verify', 'mc-backup-2000-01-01_00-00-00.db');
      expect(missing.status).toBe(1);
      const audit = query<{ action: string }>(dbPath, "SELECT action FROM audit_log WHERE actor = 'cli'");
      expect(audit.filter((a) => a.action === 'backup_verify')).toHaveLength(2);
    });
  });

  describe('drill', () => {
    it('should pass on a sound backup, fail without one', async () => {
      const { dir, dbPath } = await preparedDatabase();
      expect(cli(dbPath, 'backups', 'drill').status).toBe(1);
      expect(cli(dbPath, 'backups', 'create').status).toBe(0);
      const drill = cli(dbPath, 'backups', 'drill');
      expect(drill.status).toBe(0);
      expect(drill.stdout).toContain(`Restore drill of ${newestBackup(dir)} passed`);
      // The scratch copy is gone.
      expect(backupsIn(dir)).toEqual([newestBackup(dir)]);
    });
  });

  describe('restore (offline)', () => {
    it('should bring the data back, drop stale -wal/-shm, keep a safety copy, and the service starts on it', async () => {
      const { dir, dbPath } = await preparedDatabase(async (t) => {
        await createUser(t.http, 'ops', 'operator');
      });
      expect(cli(dbPath, 'backups', 'create').status).toBe(0);
      const backup = newestBackup(dir);

      // After the backup, a process deletes the row and dies without closing: the deletion lives only in a -wal.
      await deleteInCrashedProcess(dbPath, "DELETE FROM users WHERE username = 'ops'");
      expect(fs.existsSync(`${dbPath}-wal`)).toBe(true);

      const run = cli(dbPath, 'backups', 'restore', backup, '--yes');
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      expect(run.stdout).toContain(`Restored ${backup}`);

      expect(fs.readdirSync(dir).sort()).toEqual(['backups', 'mission-control.db']);
      const safety = backupsIn(dir).filter((n) => n.startsWith('mc-safety-'));
      expect(safety).toHaveLength(1);
      // The safety copy holds the state that was replaced, including what only the -wal had.
      const safetyFile = path.join(dir, 'backups', safety[0]);
      expect(query(safetyFile, "SELECT 1 FROM users WHERE username = 'ops'")).toHaveLength(0);
      expect(query(dbPath, "SELECT 1 FROM users WHERE username = 'ops'")).toHaveLength(1);
      const audit = query<{ actor: string; detail: string }>(
        dbPath,
        "SELECT actor, detail FROM audit_log WHERE action = 'backup_restore'",
      );
      expect(audit).toHaveLength(1);
      expect(audit[0].actor).toBe('cli');
      expect(JSON.parse(audit[0].detail)).toMatchObject({ name: backup, safety_backup: safety[0], offline: true });

      const t = await startTestApp({}, dir);
      running.push(t);
      const users = await request(t.http).get('/api/auth/users').set('x-api-key', API_KEY).expect(200);
      expect((users.body as { users: { username: string }[] }).users.map((u) => u.username)).toContain('ops');
    });

    it('should refuse a corrupted backup with exit 1 and leave the database byte-for-byte unchanged', async () => {
      const { dir, dbPath } = await preparedDatabase();
      expect(cli(dbPath, 'backups', 'create').status).toBe(0);
      const backup = newestBackup(dir);
      corrupt(path.join(dir, 'backups', backup));
      const before = { sha: fileSha(dbPath), files: fs.readdirSync(dir).sort(), backups: backupsIn(dir) };

      const run = cli(dbPath, 'backups', 'restore', backup, '--yes');
      expect(run.status).toBe(1);
      expect(run.stderr).toContain(`Refusing to restore ${backup}`);
      expect({ sha: fileSha(dbPath), files: fs.readdirSync(dir).sort(), backups: backupsIn(dir) }).toEqual(before);
    });

    it('should refuse while the service is running on the database', async () => {
      const { dir, dbPath } = await preparedDatabase();
      expect(cli(dbPath, 'backups', 'create').status).toBe(0);
      const backup = newestBackup(dir);
      const t = await startTestApp({}, dir);
      running.push(t);
      const backupsBefore = backupsIn(dir);

      const run = cli(dbPath, 'backups', 'restore', backup, '--yes');
      expect(run.status).toBe(1);
      expect(run.stderr).toContain('the service appears to be running');
      expect(backupsIn(dir)).toEqual(backupsBefore);
      // The service did not notice anything.
      await request(t.http).get('/api/backup').set('x-api-key', API_KEY).expect(200);
    });
  });
});

/** Runs `sql` in another process in WAL mode, then SIGKILLs it, leaving its -wal and -shm behind. */
async function deleteInCrashedProcess(dbPath: string, sql: string): Promise<void> {
  const source = `
    const Database = require(process.argv[1]);
    const db = new Database(process.argv[2], { fileMustExist: true });
    db.pragma('journal_mode = WAL');
    db.pragma('wal_autocheckpoint = 0');
    db.exec(process.argv[3]);
    process.stdout.write('done\\n');
    setInterval(() => undefined, 1000);
  `;
  const child: ChildProcess = spawn(process.execPath, ['-e', source, require.resolve('better-sqlite3'), dbPath, sql], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('done')) {
        resolve();
      }
    });
    child.once('exit', () => reject(new Error('the writer exited before it was killed')));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}
