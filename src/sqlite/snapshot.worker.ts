/**
 * Runs in a worker thread (see snapshot.ts). Everything here may block: that is the point of being off the main
 * thread. Keep imports to node built-ins and better-sqlite3 so the worker starts fast and never pulls in Nest.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { type MessagePort, parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { BACKGROUND_READ_BYTES } from '../common/io-chunk';
import { closeQuietly } from './close-quietly';
import { copyWithSha256, type CopyResult } from './byte-copy';
import { openRegularFile } from './regular-file';
import { headerProblem, UNUSABLE_HEADER } from './sqlite-header';
import { checkDatabase } from './database-check';
import { readEveryTable } from '../database/read-every-table';
import { notOrdinaryTables, readSchemaFacts } from '../database/schema-facts';
import { carryOver, type CarryOverResult } from '../recovery/carry-over';
import type {
  InspectJob,
  InspectResult,
  ProbeResult,
  RestoreJob,
  RestoreResult,
  SnapshotWorkerReply,
  WorkerFailure,
  WorkerJob,
} from './snapshot';

/**
 * better-sqlite3 clamps the page count per step to 2^31-1. Any database SQLite can hold at the default page size
 * fits, so the copy runs as one sqlite3_backup_step under one read transaction and cannot be restarted by writers.
 */
const ALL_PAGES = 0x7fffffff;
const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');
/** TypeORM's default name for its table of applied migrations. */
const MIGRATIONS_TABLE = 'migrations';

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function fsyncFile(file: string): number {
  const fd = openRegularFile(file);
  try {
    fs.fsyncSync(fd);
    return fs.fstatSync(fd).size;
  } finally {
    fs.closeSync(fd);
  }
}

function sha256File(file: string): string {
  const hash = createHash('sha256');
  const fd = openRegularFile(file);
  try {
    const buffer = Buffer.allocUnsafe(BACKGROUND_READ_BYTES);
    for (;;) {
      const n = fs.readSync(fd, buffer, 0, buffer.length, null);
      if (n === 0) {
        break;
      }
      hash.update(buffer.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** The first 100 bytes and the size of a file of the backups folder (never the live database: see inspect). */
function readRegularHeader(file: string): { header: Buffer; size: number } {
  const fd = openRegularFile(file);
  try {
    const header = Buffer.alloc(100);
    const n = fs.readSync(fd, header, 0, 100, 0);
    return { header: header.subarray(0, n), size: fs.fstatSync(fd).size };
  } finally {
    fs.closeSync(fd);
  }
}

function headerPageSize(header: Buffer): number {
  const raw = header.readUInt16BE(16);
  return raw === 1 ? 65536 : raw;
}

/** `3050004` → `3.50.4`: the library that last wrote the file (header offset 96). */
function headerSqliteVersion(header: Buffer): string | null {
  const n = header.readUInt32BE(96);
  if (n < 3_000_000 || n > 3_999_999) {
    return null;
  }
  return `${Math.floor(n / 1_000_000)}.${Math.floor((n % 1_000_000) / 1000)}.${n % 1000}`;
}

/**
 * A foreign file is untrusted: SQLite's defensive mode (better-sqlite3 turns SQLITE_DBCONFIG_DEFENSIVE on at every
 * open unless unsafeMode is asked for; this says so explicitly) and trusted_schema=OFF, so no function of the file's
 * views, triggers or defaults can run during the checks.
 */
function defensive(db: Database.Database): void {
  db.unsafeMode(false);
  db.pragma('trusted_schema = OFF');
}

function migrationVersion(db: Database.Database): number | null {
  const row = db.prepare(`SELECT MAX("timestamp") AS v FROM "${MIGRATIONS_TABLE}"`).get() as { v: unknown };
  return typeof row.v === 'number' || typeof row.v === 'bigint' ? Number(row.v) : null;
}

function sqliteMessage(err: unknown): string {
  const message = (err as { message?: unknown } | null)?.message;
  // SQLite's own messages ("file is not a database", "database disk image is malformed") name no path.
  return typeof message === 'string' && message.length > 0 ? message : 'unreadable database';
}

/**
 * What a file is. Structural problems are answers (`opened: false` or a non-ok `integrity`), not failures: a file
 * so broken that SQLite cannot open it must come back as a readable verdict.
 */
function inspect(job: InspectJob): InspectResult {
  const started = performance.now();
  // Non-blocking, no symlinks, regular files only: a FIFO or a device under a backup's name fails here at once.
  const { header, size } = readRegularHeader(job.file);
  const result: InspectResult = {
    ok: true,
    size,
    opened: false,
    integrity: null,
    sha256: null,
    pageCount: null,
    pageSize: null,
    sqliteVersion: null,
    schemaVersion: null,
    tables: [],
    schema: [],
    virtualTables: [],
    encoding: null,
    schemaCheck: null,
    admins: null,
    converted: false,
    ms: 0,
  };
  const finish = (): InspectResult => {
    if (job.hash) {
      result.sha256 = sha256File(job.file);
    }
    result.ms = performance.now() - started;
    return result;
  };

  if (header.length < 100 || !header.subarray(0, 16).equals(SQLITE_MAGIC)) {
    result.integrity = 'file is not a database';
    return finish();
  }
  const pageSize = headerPageSize(header);
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
    result.integrity = 'file is not a database (invalid page size)';
    return finish();
  }
  result.pageSize = pageSize;
  result.sqliteVersion = headerSqliteVersion(header);
  const badHeader = headerProblem(header);
  if (badHeader !== null) {
    result.integrity = `${UNUSABLE_HEADER}: its header ${badHeader}`;
    return finish();
  }
  // The in-header page count is valid when its "version-valid-for" matches the change counter (SQLite ≥ 3.7).
  const headerPages = header.readUInt32BE(28);
  const countValid = header.readUInt32BE(92) === header.readUInt32BE(24) && headerPages > 0;
  if (result.size % pageSize !== 0 || (countValid && result.size < headerPages * pageSize)) {
    result.integrity = 'database file is truncated';
    return finish();
  }

  let db: Database.Database | undefined;
  try {
    const isWal = header[18] === 2 || header[19] === 2;
    if (isWal && job.makeStandalone) {
      db = new Database(job.file, { fileMustExist: true });
      defensive(db);
      if (db.pragma('journal_mode = DELETE', { simple: true }) !== 'delete') {
        throw new Error('could not switch the file to rollback-journal mode');
      }
      db.close();
      db = undefined;
      result.converted = true;
    }
    db = new Database(job.file, { readonly: true, fileMustExist: true });
    defensive(db);
    result.pageCount = Number(db.pragma('page_count', { simple: true }));
    result.opened = true;
    // The schema first, asking SQLite without connecting any virtual table: integrity_check and quick_check connect
    // every virtual table and run its module (fts5 checks its own index), so a file with one is not checked at all;
    // its schema alone refuses it.
    result.schema = readSchemaFacts(db);
    const virtualTables = notOrdinaryTables(result.schema).sort();
    result.virtualTables = virtualTables;
    result.tables = result.schema
      .filter((row) => row.type === 'table')
      .map((row) => row.name)
      .sort();
    if (job.integrity !== 'none' && virtualTables.length === 0) {
      const pragma = job.integrity === 'full' ? 'integrity_check(1)' : 'quick_check(1)';
      const first = db.pragma(pragma, { simple: true });
      result.integrity = typeof first === 'string' ? first : String(first);
      if (job.integrity === 'full' && result.integrity === 'ok') {
        readEveryTable(db);
      }
    }
    result.encoding = String(db.pragma('encoding', { simple: true }));
    // Read only when SQLite reads them as ordinary tables: a virtual table under either name would run its module.
    const readable = (table: string) =>
      result.tables.includes(table) && !virtualTables.some((name) => name.toLowerCase() === table);
    if (readable(MIGRATIONS_TABLE)) {
      result.schemaVersion = migrationVersion(db);
    }
    if (readable('users')) {
      const row = db.prepare("SELECT count(*) AS n FROM users WHERE role = 'admin'").get() as { n: number };
      result.admins = Number(row.n);
    }
  } catch (err) {
    if (!result.opened) {
      result.integrity = sqliteMessage(err);
    } else if (result.integrity === null || result.integrity === 'ok') {
      result.integrity = sqliteMessage(err);
    }
  } finally {
    closeQuietly(db);
  }
  if (result.converted) {
    result.size = fsyncFile(job.file);
  }
  return finish();
}

/**
 * Why this shape (measured, see RecoveryService): better-sqlite3 can only be the *source* of the backup API, and it
 * writes into a file path through a fresh connection of its own. Here the source is the backup file and the
 * destination is the live database's path. That second connection goes through SQLite's normal locking: its first
 * step (0 pages) takes the live database's write lock (WAL mode: the WAL write lock) and keeps it until the copy is
 * done; the next step copies every page and commits them as one WAL transaction, bumping the schema cookie. Every
 * other connection (TypeORM's live handle included) sees the restored content at its next read transaction and
 * reloads its schema; a failure before the commit leaves the live database untouched. Readers keep reading the old
 * snapshot while the copy runs; writers (this process's or another's) wait for the lock and land after the commit.
 *
 * Never opens `dest` outside SQLite: on POSIX, closing any descriptor of a file drops every lock the process holds
 * on it (sqlite.org/howtocorrupt.html §2.2), which would leave the service's own connection unprotected.
 */
async function restore(job: RestoreJob, port: MessagePort | undefined): Promise<RestoreResult> {
  const started = performance.now();
  let source: Database.Database | undefined;
  try {
    source = new Database(job.source, { readonly: true, fileMustExist: true });
    source.pragma('trusted_schema = OFF');
    const pageSize = Number(source.pragma('page_size', { simple: true }));
    const deadline = Date.now() + job.maxWaitMs;
    let steps = 0;
    let copyStarted = 0;
    for (;;) {
      let locked = false;
      // The destination connection better-sqlite3 opens has no busy timeout. A first step that finds the live
      // database locked returns SQLITE_BUSY before the page count is known, which better-sqlite3 reports as a
      // finished backup of 0 pages: the handler never ran, so nothing was copied. Wait a little and start again.
      const progress = await source.backup(job.dest, {
        progress: () => {
          steps += 1;
          if (!locked) {
            locked = true;
            if (job.handshake) {
              awaitGoAhead(port);
            }
            copyStarted = performance.now();
            return ALL_PAGES;
          }
          // Only a busy commit lands here: the write lock is already ours.
          if (Date.now() > deadline) {
            throw Object.assign(new Error('Restore did not finish: the live database stayed busy'), {
              code: 'SQLITE_BUSY',
            });
          }
          sleepMs(20);
          return ALL_PAGES;
        },
      });
      if (locked) {
        const copyMs = performance.now() - copyStarted;
        closeQuietly(source);
        source = undefined;
        const syncStarted = performance.now();
        syncCommittedWal(job.dest, job.busyTimeoutMs);
        const checkpointStarted = performance.now();
        if (job.checkpoint) {
          checkpoint(job.dest, job.busyTimeoutMs);
        }
        const done = performance.now();
        return {
          ok: true,
          pages: progress.totalPages,
          pageSize,
          steps,
          copyMs,
          syncMs: checkpointStarted - syncStarted,
          checkpointMs: done - checkpointStarted,
          totalMs: done - started,
        };
      }
      if (Date.now() > deadline) {
        throw Object.assign(new Error('Restore did not start: the live database stayed locked'), {
          code: 'SQLITE_BUSY',
        });
      }
      sleepMs(20);
    }
  } finally {
    closeQuietly(source);
  }
}

/**
 * Tells the caller the write lock is held, then blocks this worker (not the service's event loop) until it answers.
 * Throwing here makes better-sqlite3 finish the backup without committing: nothing was copied.
 */
function awaitGoAhead(port: MessagePort | undefined): void {
  if (!port) {
    throw new Error('Restore handshake without a port');
  }
  port.postMessage({ type: 'locked' });
  for (;;) {
    const received = receiveMessageOnPort(port);
    if (received?.message.type === 'proceed') {
      return;
    }
    if (received?.message.type === 'abort') {
      throw new Error('Restore aborted before the copy');
    }
    sleepMs(2);
  }
}

/**
 * Makes the copied pages durable before the restore is reported done (and its journal moves to `copied`, which
 * start-up recovery would then finish). The connection better-sqlite3 opened for the copy runs WAL at
 * synchronous=NORMAL (its build default), so its commit did not fsync the WAL; the checkpoint after it would, but
 * it is best effort and copies nothing while a reader still holds the old snapshot. A commit at synchronous=FULL
 * fsyncs the whole WAL, the copy's frames included: rewriting user_version with its own value is such a commit and
 * changes nothing. If it cannot get the write lock the restore fails, and the caller rolls back to the safety copy.
 */
export function syncCommittedWal(file: string, busyTimeoutMs: number): void {
  const db = new Database(file, { fileMustExist: true, timeout: busyTimeoutMs });
  try {
    db.pragma('synchronous = FULL');
    db.transaction(() => {
      const version = Number(db.pragma('user_version', { simple: true }));
      db.pragma(`user_version = ${version}`);
    }).immediate();
  } finally {
    closeQuietly(db);
  }
}

/** Moves the restored pages from the WAL into the main file. Best effort: the WAL already holds them durably. */
function checkpoint(file: string, busyTimeoutMs: number): void {
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { fileMustExist: true, timeout: busyTimeoutMs });
    db.pragma('wal_checkpoint(TRUNCATE)');
  } catch {
    // Busy readers: SQLite checkpoints later on its own.
  } finally {
    closeQuietly(db);
  }
}

async function run(
  job: WorkerJob,
  port: MessagePort | undefined,
): Promise<
  SnapshotWorkerReply | InspectResult | RestoreResult | ProbeResult | CarryOverResult | CopyResult | WorkerFailure
> {
  switch (job.op) {
    case 'inspect':
      return inspect(job);
    case 'restore':
      return restore(job, port);
    case 'probe':
      return { ok: true, check: checkDatabase(job) };
    case 'carry_over':
      return carryOver(job);
    case 'copy':
      return copyWithSha256(job);
    default:
      return { ok: false, message: 'Unknown snapshot worker operation' };
  }
}

function toFailure(err: unknown): WorkerFailure {
  const e = err as { message?: unknown; code?: unknown; detail?: unknown } | null;
  return {
    ok: false,
    message: typeof e?.message === 'string' ? e.message : 'Snapshot worker failed',
    code: typeof e?.code === 'string' ? e.code : undefined,
    detail: typeof e?.detail === 'string' ? e.detail : undefined,
  };
}

if (parentPort) {
  const parent = parentPort;
  const data = workerData as { job: WorkerJob; port?: MessagePort };
  void run(data.job, data.port)
    .catch(toFailure)
    .then((reply) => parent.postMessage(reply));
}
