/**
 * Runs in a worker thread (see database-probe.ts): `PRAGMA quick_check` of the live database, then a read of every
 * table, on a connection of its own, opened and closed through SQLite only (never a raw open of the file: closing a
 * raw descriptor would drop the locks the whole process holds on it). Node built-ins, better-sqlite3 and one small
 * helper only, so it starts fast.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { readEveryTable } from '../database/read-every-table';

export interface ProbeJob {
  dbPath: string;
  busyTimeoutMs: number;
  /** better-sqlite3's `nativeBinding`: a test points it at a missing file, as `npm ci` under a running service does. */
  nativeBinding?: string;
}

export interface ProbeReply {
  ok: boolean;
  /**
   * `checked`: SQLite read the file and `quickCheck` is its verdict. `not_run`: the check itself could not run (the
   * native module failed to load, the database was locked, …), which says nothing about the file.
   */
  outcome: 'checked' | 'not_run';
  /** `ok`, or the first problem quick_check found, or why the database could not be read or checked (for the log). */
  quickCheck: string;
  /** When the check failed with an error: its SQLite code or class, safe to show (never a message or a path). */
  errorCode?: string;
  ms: number;
}

/**
 * Whether an error is SQLite finding the file damaged (or the disk failing under it), as opposed to the check not
 * being able to run at all: only the former makes the database `down`.
 */
export function isDamage(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^SQLITE_(CORRUPT|NOTADB|IOERR)/.test(code);
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[A-Z0-9_]{2,40}$/.test(code)) {
    return code;
  }
  return error instanceof Error && /^[A-Za-z]{1,40}$/.test(error.name) ? error.name : 'Error';
}

export function probe(
  job: ProbeJob,
  open: (file: string, options: Database.Options) => Database.Database = (file, options) => new Database(file, options),
): ProbeReply {
  const started = performance.now();
  let db: Database.Database | undefined;
  try {
    // Read-write open (a read-only one cannot always join a WAL database), but this connection never writes.
    db = open(job.dbPath, {
      fileMustExist: true,
      timeout: job.busyTimeoutMs,
      ...(job.nativeBinding !== undefined ? { nativeBinding: job.nativeBinding } : {}),
    });
    db.pragma('query_only = ON');
    db.prepare('SELECT count(*) FROM sqlite_schema').get();
    const first = db.pragma('quick_check(1)', { simple: true });
    const quickCheck = typeof first === 'string' ? first : String(first);
    if (quickCheck === 'ok') {
      readEveryTable(db);
    }
    return { ok: quickCheck === 'ok', outcome: 'checked', quickCheck, ms: performance.now() - started };
  } catch (error) {
    const message = (error as { message?: unknown } | null)?.message;
    return {
      ok: false,
      outcome: isDamage(error) ? 'checked' : 'not_run',
      quickCheck: typeof message === 'string' ? message : 'unreadable database',
      errorCode: errorCode(error),
      ms: performance.now() - started,
    };
  } finally {
    try {
      db?.close();
    } catch {
      // Nothing to add to the verdict.
    }
  }
}

if (parentPort) {
  parentPort.postMessage(probe(workerData as ProbeJob));
}
