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
}

export interface ProbeReply {
  ok: boolean;
  /** `ok`, or the first problem quick_check found, or why the database could not be read. */
  quickCheck: string;
  ms: number;
}

function probe(job: ProbeJob): ProbeReply {
  const started = performance.now();
  let db: Database.Database | undefined;
  try {
    // Read-write open (a read-only one cannot always join a WAL database), but this connection never writes.
    db = new Database(job.dbPath, { fileMustExist: true, timeout: job.busyTimeoutMs });
    db.pragma('query_only = ON');
    db.prepare('SELECT count(*) FROM sqlite_schema').get();
    const first = db.pragma('quick_check(1)', { simple: true });
    const quickCheck = typeof first === 'string' ? first : String(first);
    if (quickCheck === 'ok') {
      readEveryTable(db);
    }
    return { ok: quickCheck === 'ok', quickCheck, ms: performance.now() - started };
  } catch (error) {
    const message = (error as { message?: unknown } | null)?.message;
    return {
      ok: false,
      quickCheck: typeof message === 'string' ? message : 'unreadable database',
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
