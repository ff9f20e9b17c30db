import Database from 'better-sqlite3';
import { readEveryTable } from '../database/read-every-table';
import { closeQuietly } from './close-quietly';

/**
 * The one check of a database file that health and a restore both trust: `PRAGMA quick_check`, then a read of every
 * ordinary table (quick_check passes a table whose root page was overwritten although no read of it gets through).
 * Opened and closed through SQLite only, never a raw descriptor: the file may be the live database, and closing a
 * raw descriptor would drop every lock the process holds on it.
 */
export interface DatabaseCheckJob {
  file: string;
  busyTimeoutMs: number;
  /** better-sqlite3's `nativeBinding`: a test points it at a missing file, as `npm ci` under a running service does. */
  nativeBinding?: string;
}

export interface DatabaseCheck {
  ok: boolean;
  /**
   * `checked`: SQLite read the file and `quickCheck` is its verdict. `not_run`: the check itself could not run (the
   * native module failed to load, the database was locked, …), which says nothing about the file.
   */
  outcome: 'checked' | 'not_run';
  /** `ok`, or the first problem found, or why the database could not be read or checked (for the log). */
  quickCheck: string;
  /** When the check failed with an error: its SQLite code or class, safe to show (never a message or a path). */
  errorCode?: string;
  ms: number;
}

/**
 * Whether an error is SQLite finding the file damaged (or the disk failing under it), as opposed to the check not
 * being able to run at all: only the former is a verdict on the database.
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

/** Blocking: run it in a worker thread (`runProbeWorker` in snapshot.ts), never on the service's event loop. */
export function checkDatabase(
  job: DatabaseCheckJob,
  open: (file: string, options: Database.Options) => Database.Database = (file, options) => new Database(file, options),
): DatabaseCheck {
  const started = performance.now();
  let db: Database.Database | undefined;
  try {
    // Read-write open (a read-only one cannot always join a WAL database), but this connection never writes.
    db = open(job.file, {
      fileMustExist: true,
      timeout: job.busyTimeoutMs,
      ...(job.nativeBinding !== undefined ? { nativeBinding: job.nativeBinding } : {}),
    });
    db.pragma('query_only = ON');
    db.pragma('trusted_schema = OFF');
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
    closeQuietly(db);
  }
}
