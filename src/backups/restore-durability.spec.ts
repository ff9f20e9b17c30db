import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';

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

    const trace = path.join(dir, 'strace.out');
    const script =
      `require(${JSON.stringify(require.resolve('sucrase/register/ts'))});` +
      `require(${JSON.stringify(path.join(__dirname, 'snapshot.worker.ts'))}).syncCommittedWal(process.argv[1], 5000);`;
    const run = spawnSync(
      'strace',
      ['-f', '-y', '-e', 'trace=fsync,fdatasync', '-o', trace, process.execPath, '-e', script, live],
      { cwd: ROOT, encoding: 'utf8' },
    );
    reader.exec('COMMIT');
    reader.close();
    writer.close();
    expect([run.status, run.stderr]).toEqual([0, '']);
    const synced = readFileSync(trace, 'utf8')
      .split('\n')
      .filter((line) => /f(data)?sync\(\d+<[^>]*live\.db-wal>\)/.test(line));
    expect(synced.length).toBeGreaterThan(0);
  });
});
