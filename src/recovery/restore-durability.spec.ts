import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { DataSource } from 'typeorm';
import { MIGRATIONS } from '../database/migrations';

const ROOT = path.resolve(__dirname, '..', '..');
// strace installed and allowed to trace here (a container without ptrace rights makes it fail).
const hasStrace = spawnSync('strace', ['-e', 'trace=none', process.execPath, '-e', '0']).status === 0;

/**
 * A restore's copy commits through a connection at synchronous=NORMAL, which does not fsync the WAL, and the
 * checkpoint after it copies nothing while a reader holds the old snapshot. Before the restore is reported done
 * (and its journal says `copied`), the worker forces an fsync of the WAL: seen here with strace, with a reader
 * holding its snapshot in this process. A power cut cannot be staged in a test; the system call is the evidence.
 */
(hasStrace ? describe : describe.skip)('syncCommittedWal (needs strace)', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'mc-durability-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Runs `setup`, then `body` (JS, with `worker`, `state` and `Database` in scope), under strace: the fsyncs of
   * `file`'s WAL that `body` made (a mkdir between the two marks where it starts).
   */
  function walFsyncsOf(file: string, setup: string, body: string): string[] {
    const trace = path.join(dir, 'strace.out');
    const script =
      `require(${JSON.stringify(require.resolve('sucrase/register/ts'))});` +
      `const worker = require(${JSON.stringify(path.join(__dirname, '..', 'sqlite', 'snapshot.worker.ts'))});` +
      `const state = require(${JSON.stringify(path.join(__dirname, 'restore-state.ts'))});` +
      `const Database = require('better-sqlite3');` +
      `${setup};require('node:fs').mkdirSync(process.argv[1] + '.mark');${body}`;
    const run = spawnSync(
      'strace',
      ['-f', '-y', '-e', 'trace=fsync,fdatasync,mkdir,mkdirat', '-o', trace, process.execPath, '-e', script, file],
      { cwd: ROOT, encoding: 'utf8' },
    );
    expect(run.stderr).toBe('');
    const lines = readFileSync(trace, 'utf8').split('\n');
    const mark = lines.findIndex((line) => line.includes('.mark"'));
    expect(mark).toBeGreaterThanOrEqual(0);
    const wal = `${path.basename(file)}-wal>`;
    return lines.slice(mark).filter((line) => /f(data)?sync\(/.test(line) && line.includes(wal));
  }

  it('fsyncs the live database WAL while a reader holds the old snapshot', () => {
    const live = path.join(dir, 'live.db');
    const writer = new Database(live);
    writer.pragma('journal_mode = WAL');
    writer.pragma('synchronous = NORMAL');
    writer.exec('CREATE TABLE t (v BLOB)');
    const reader = new Database(live, { readonly: true });
    reader.exec('BEGIN');
    reader.prepare('SELECT count(*) FROM t').get();
    writer.prepare('INSERT INTO t VALUES (randomblob(100000))').run();

    const synced = walFsyncsOf(live, '', 'worker.syncCommittedWal(process.argv[1], 5000);');
    reader.exec('COMMIT');
    reader.close();
    writer.close();
    expect(synced).not.toEqual([]);
  });

  it('fsyncs the finishing transaction before the journal can be removed', async () => {
    const live = path.join(dir, 'live.db');
    const dataSource = new DataSource({
      type: 'better-sqlite3',
      database: live,
      migrations: MIGRATIONS,
      logging: false,
    });
    await dataSource.initialize();
    await dataSource.query('PRAGMA journal_mode = WAL');
    await dataSource.runMigrations();
    await dataSource.destroy();
    // A first commit resets the WAL, and SQLite fsyncs a new WAL header even at NORMAL: that one comes before the mark.
    const setup = `
      const db = new Database(process.argv[1]);
      db.prepare("INSERT INTO settings (key, value, updated_at) VALUES ('x', 'y', 0)").run();
      const pre = state.readLiveState(db);
      const now = Math.floor(Date.now() / 1000)`;
    const finish = `
      state.finishRestore(db, pre, { restoreId: 'r-1', copiedAuditSeq: pre.auditSeq, keepSessions: true, caller: null,
        now, event: { action: 'backup_restore', actor: 'admin', actorId: null, targetId: 'x', detail: {}, ip: null,
        userAgent: null, createdAt: now } });
      if (Number(db.pragma('synchronous', { simple: true })) !== 1) throw new Error('synchronous not put back');
      // No close: closing the last connection checkpoints, and that fsync would hide a commit that was not.
      process.kill(process.pid, 'SIGKILL');`;
    expect(walFsyncsOf(live, setup, finish)).not.toEqual([]);
  });
});
