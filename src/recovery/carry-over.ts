/**
 * A restore's carry-over, run in the engine host worker (snapshot.worker.ts) while the restore worker holds the live
 * database's write lock: it reads what a restore keeps from the live database, writes it into the scratch copy with
 * the restore's own event, and counts the admins of the result. With a large audit log this takes seconds of
 * SQLite work, which on the main thread stalled every request for as long (issue #19).
 *
 * Loaded by the worker: keep imports to better-sqlite3 and modules that import nothing else.
 */
import Database from 'better-sqlite3';
import { closeQuietly } from '../sqlite/close-quietly';
import {
  type AuditRow,
  finishRestore,
  type FinishOptions,
  type LiveState,
  maxAuditId,
  readLiveState,
  type RestoreChanges,
} from './restore-state';

export interface CarryOverJob {
  op: 'carry_over';
  /** The live database: read through SQLite only, read-only, under the restore worker's write lock. */
  live: string;
  /** The restore's scratch copy, which receives the carried state. */
  scratch: string;
  busyTimeoutMs: number;
  /** The safety copy's manifest row, carried with the live database's own. */
  safetyRow: Record<string, unknown>;
  restoreId: string;
  caller: FinishOptions['caller'];
  now: number;
  event: AuditRow;
}

export interface CarryOverResult {
  ok: true;
  changes: RestoreChanges;
  /** `users` rows with role admin in the finished scratch copy: a restore that leaves none is refused. */
  admins: number;
}

/** Set as the failure's `detail` when counting the admins failed, so the caller reports the `health` stage. */
export const ADMIN_CHECK_FAILED = 'health';

/** Blocking: only ever called in a worker thread. */
export function carryOver(job: CarryOverJob): CarryOverResult {
  const pre = readLive(job);
  pre.carried.get('backup_manifests')?.push(job.safetyRow);
  const scratch = new Database(job.scratch, { fileMustExist: true, timeout: job.busyTimeoutMs });
  let changes: RestoreChanges;
  try {
    scratch.pragma('trusted_schema = OFF');
    changes = finishRestore(scratch, pre, {
      restoreId: job.restoreId,
      copiedAuditSeq: maxAuditId(scratch),
      keepSessions: false,
      caller: job.caller,
      now: job.now,
      event: job.event,
    });
  } finally {
    scratch.close();
  }
  return { ok: true, changes, admins: countAdmins(job.scratch) };
}

/**
 * A connection of this worker thread is as much "through SQLite" as the service's own: the addon, and with it
 * SQLite's per-process lock bookkeeping, is loaded once per process. Under the write lock it reads exactly the last
 * commit, which is what the service's connection would read.
 */
function readLive(job: CarryOverJob): LiveState {
  const live = new Database(job.live, { readonly: true, fileMustExist: true, timeout: job.busyTimeoutMs });
  try {
    live.pragma('trusted_schema = OFF');
    return readLiveState(live);
  } finally {
    closeQuietly(live);
  }
}

function countAdmins(file: string): number {
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      const row = db.prepare("SELECT count(*) AS n FROM users WHERE role = 'admin'").get() as { n: number };
      return Number(row.n);
    } finally {
      db.close();
    }
  } catch (error) {
    throw Object.assign(error as Error, { detail: ADMIN_CHECK_FAILED });
  }
}
