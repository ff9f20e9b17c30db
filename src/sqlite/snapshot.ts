import { type ChildProcess, fork, type StdioOptions } from 'node:child_process';
import * as path from 'node:path';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { typeScriptEntrySource } from '../common/typescript-entry';
import type { DatabaseCheck, DatabaseCheckJob } from './database-check';
import {
  type CheckThreads,
  DEFAULT_CHECK_THREADS,
  DEFAULT_SNAPSHOT_IDLE,
  DEFAULT_SNAPSHOT_NICE,
  type SnapshotOptions,
} from './snapshot-options';
import { checkSchema, type SchemaObject, type SchemaVerdict } from '../database/schema-check';
import type { CarryOverJob, CarryOverResult } from '../recovery/carry-over';
import type { CopyJob, CopyResult } from './byte-copy';

/**
 * Jobs for snapshot.worker.ts: SQLite work that may take long (copies, integrity_check, hashing) and therefore
 * never runs on the main thread.
 * - `snapshot`: a hot copy of a live database into a new file (a backup, a safety backup, a drill's scratch copy).
 * - `inspect`: what a file is (opens as SQLite? integrity, schema, admins, sha256), optionally converting a
 *   WAL-mode file to a standalone rollback-journal file first (uploads).
 * - `restore`: copies a backup's pages into the live database file (see RestoreJob).
 * - `carry_over`: a restore's carry-over into its scratch copy, under the restore's write lock (carry-over.ts).
 */
export interface SnapshotJob {
  op: 'snapshot';
  source: string;
  dest: string;
  busyTimeoutMs: number;
  maxSteps: number;
  /** Also compute the copy's sha256 (one more read of the file, in the worker, after the fsync). */
  hash: boolean;
}

export type IntegrityLevel = 'none' | 'quick' | 'full';

export interface InspectJob {
  op: 'inspect';
  file: string;
  integrity: IntegrityLevel;
  hash: boolean;
  /** Switch a WAL-mode file to journal_mode=DELETE before anything else (it then needs no -wal/-shm). */
  makeStandalone: boolean;
}

/**
 * Copies every page of `source` (a backup file, opened read-only) into `dest` (the live database) with SQLite's
 * online backup API, in one step under one write transaction on `dest`: either all of it commits or none does.
 *
 * With `handshake`, the worker stops once it holds `dest`'s write lock (before copying a page), posts `locked` on
 * the job's port and waits for `proceed` or `abort`: the caller takes its safety copy in that window, when no
 * other connection or process can commit to `dest`, so no acknowledged write falls between the two.
 */
export interface RestoreJob {
  op: 'restore';
  source: string;
  dest: string;
  busyTimeoutMs: number;
  /** Give up when `dest` stays locked by another connection for this long. */
  maxWaitMs: number;
  handshake: boolean;
  /** Checkpoint `dest` once the copy is durable (see RestoreOptions.checkpoint). */
  checkpoint: boolean;
}

/** {@link checkDatabase} in a worker thread: the file may be live (health) or a restore's scratch copy. */
export interface ProbeJob extends DatabaseCheckJob {
  op: 'probe';
}

/** `ok` is the worker's success; the verdict on the file is `check.ok`. */
export interface ProbeResult {
  ok: true;
  check: DatabaseCheck;
}

export type { CheckThreads, SnapshotOptions };

export type WorkerJob = SnapshotJob | InspectJob | RestoreJob | ProbeJob | CarryOverJob | CopyJob;

export interface WorkerFailure {
  ok: false;
  message: string;
  code?: string;
  detail?: string;
}

export type SnapshotWorkerReply =
  | {
      ok: true;
      pages: number;
      pageSize: number;
      size: number;
      /** sqlite3_backup_step calls: 2 when nothing interfered (a 0-page probe, then everything in one step). */
      steps: number;
      quickCheck: 'ok';
      copyMs: number;
      totalMs: number;
      /** Hex sha256 of the published bytes, or null when not asked for. */
      sha256: string | null;
      /** The SQLite library that wrote the copy, e.g. `3.50.4`. */
      sqliteVersion: string | null;
      /** Newest migration timestamp in the copy's `migrations` table; null when it has none. */
      schemaVersion: number | null;
      /** sha256 after the copy (0 when it was computed during the copy, as the pinned-read copy does). */
      hashMs: number;
      /** The checks after the copy (quick_check, fsync, sha256 at the same time); absent from the worker thread. */
      checkMs?: number;
      /** How the pages were copied (see snapshot-copy.ts); absent from the worker thread (backup API). */
      method?: 'raw' | 'backup-api';
      /** Peak resident memory of the snapshot child process (its own, never the service's); absent from a thread. */
      peakRssBytes?: number;
      /** The lowest nice value among the child's threads when it finished; absent from a thread. */
      threadNice?: number;
    }
  | WorkerFailure;

export type SnapshotResult = Extract<SnapshotWorkerReply, { ok: true }>;

export interface InspectResult {
  ok: true;
  size: number;
  /** False when SQLite cannot open or read the file at all; `integrity` then says why. */
  opened: boolean;
  /** `ok`, the first problem found, or null when integrity was not checked. */
  integrity: string | null;
  sha256: string | null;
  pageCount: number | null;
  pageSize: number | null;
  sqliteVersion: string | null;
  schemaVersion: number | null;
  /** Names of real tables (views and the like are not counted). */
  tables: string[];
  /** Every row of the file's sqlite_schema (read, never run), with what SQLite reports of each (schema-facts.ts). */
  schema: SchemaObject[];
  /**
   * Tables SQLite does not read as b-tree tables (virtual tables): when there is one, integrity_check is not run
   * (it would run the table's module) and `integrity` stays null; the schema check refuses the file by their names.
   */
  virtualTables?: string[];
  /** PRAGMA encoding (`UTF-8`, `UTF-16le`, `UTF-16be`); null when the file did not open. */
  encoding: string | null;
  /**
   * The schema compared with the one this application creates at the file's migration version (schema-check.ts);
   * null when the file has no migration version to compare at (not opened, or not this application's).
   */
  schemaCheck: SchemaVerdict | null;
  /** `users` rows with role admin; null when there is no readable users table. */
  admins: number | null;
  /** The file was in WAL mode and has been switched to rollback-journal mode. */
  converted: boolean;
  ms: number;
}

export interface RestoreResult {
  ok: true;
  pages: number;
  pageSize: number;
  steps: number;
  copyMs: number;
  /** The commit that fsyncs the WAL after the copy, and the checkpoint after it. */
  syncMs: number;
  checkpointMs: number;
  totalMs: number;
}

type ReplyOf<J extends WorkerJob> = J extends SnapshotJob
  ? SnapshotResult
  : J extends InspectJob
    ? InspectResult
    : J extends ProbeJob
      ? ProbeResult
      : J extends CarryOverJob
        ? CarryOverResult
        : J extends CopyJob
          ? CopyResult
          : RestoreResult;

/** What the snapshot child process receives: the job plus how to run it. */
export interface SnapshotChildJob extends SnapshotJob {
  nice: number;
  idle: boolean;
  checkThreads: CheckThreads;
}

/** Raised for every snapshot failure. `message` is safe to log; it carries SQLite's reason, never a path. */
export class SnapshotError extends Error {
  constructor(
    message: string,
    readonly code?: string,
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'SnapshotError';
  }
}

const DEFAULT_BUSY_TIMEOUT_MS = 5000;
const DEFAULT_MAX_STEPS = 10;
const DEFAULT_RESTORE_MAX_WAIT_MS = 30_000;

/**
 * Under ts-jest only: the e2e suite's live-database tripwire (test/helpers/live-db-tripwire.ts) wraps fs in each
 * worker too, so a raw open of the live database in a worker thread fails the operation that made it.
 */
function tripwire(): string[] {
  // eslint-disable-next-line no-restricted-properties -- a test hook, not configuration; only on the .ts path
  const file = process.env.MC_LIVE_DB_TRIPWIRE;
  return file ? [file] : [];
}

function startChild(): ChildProcess {
  const stdio: StdioOptions = ['ignore', 'inherit', 'inherit', 'ipc'];
  if (__filename.endsWith('.ts')) {
    // The child must load TypeScript itself: node runs the -e bootstrap, which requires the .ts entry.
    const entry = path.join(__dirname, 'snapshot.child.ts');
    return fork(entry, [], { stdio, execArgv: ['-e', typeScriptEntrySource(entry)] });
  }
  // No inherited execArgv (--inspect, test-runner flags): the child is a plain node process.
  return fork(path.join(__dirname, 'snapshot.child.js'), [], { stdio, execArgv: [] });
}

/**
 * Runs one snapshot job in a fresh child process (see snapshot.child.ts). Resolves only after the child has exited,
 * so nothing still holds a file open when the caller publishes or removes the copy.
 */
function runSnapshotChild(job: SnapshotChildJob, signal?: AbortSignal): Promise<SnapshotResult> {
  if (signal?.aborted) {
    return Promise.reject(new SnapshotError('Snapshot aborted', 'ABORT_ERR'));
  }
  const child = startChild();
  const settled = settleOnExit<SnapshotResult>(child, 'process', () => child.kill('SIGKILL'), signal);
  child.send(job);
  return settled;
}

/**
 * The outcome of a worker thread or child process that posts one reply and exits: resolved with an ok reply,
 * rejected with a SnapshotError otherwise, and only once it has exited. Aborting calls `stop`.
 */
function settleOnExit<R>(
  host: Worker | ChildProcess,
  kind: 'worker' | 'process',
  stop: () => void,
  signal: AbortSignal | undefined,
): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    let reply: (WorkerFailure | { ok: true }) | undefined;
    let failure: Error | undefined;
    let aborted = false;
    const onAbort = (): void => {
      aborted = true;
      stop();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    host.on('message', (msg: WorkerFailure | { ok: true }) => {
      reply = msg;
    });
    host.on('error', (err: Error) => {
      failure ??= new SnapshotError(
        `Snapshot ${kind === 'worker' ? 'worker crashed' : 'process failed'}: ${err.message}`,
      );
    });
    host.on('exit', (code: number | null, sig?: NodeJS.Signals | null) => {
      signal?.removeEventListener('abort', onAbort);
      if (aborted && !reply?.ok) {
        reject(new SnapshotError('Snapshot aborted', 'ABORT_ERR'));
      } else if (failure) {
        reject(failure);
      } else if (!reply) {
        reject(new SnapshotError(`Snapshot ${kind} exited with ${sig ?? `code ${code}`} without a result`));
      } else if (!reply.ok) {
        reject(new SnapshotError(reply.message, reply.code, reply.detail));
      } else {
        resolve(reply as R);
      }
    });
  });
}

function startWorker(job: WorkerJob, port?: MessagePort): Worker {
  const workerData = { job, port };
  const transferList = port ? [port] : [];
  // Compiled: the .js sibling. Under ts-jest / ts-node this file is .ts and so is the worker, which then needs a
  // TypeScript loader of its own.
  if (__filename.endsWith('.ts')) {
    const bootstrap = typeScriptEntrySource(path.join(__dirname, 'snapshot.worker.ts'), tripwire());
    return new Worker(bootstrap, { eval: true, workerData, transferList });
  }
  return new Worker(path.join(__dirname, 'snapshot.worker.js'), { workerData, transferList });
}

/**
 * Runs one job in a fresh worker thread. Resolves only after the worker has exited, so nothing still holds a file
 * open when the caller publishes, removes or restores it.
 */
export function runWorkerJob<J extends WorkerJob>(
  job: J,
  signal?: AbortSignal,
  port?: MessagePort,
): Promise<ReplyOf<J>> {
  if (signal?.aborted) {
    return Promise.reject(new SnapshotError('Snapshot aborted', 'ABORT_ERR'));
  }
  const worker = startWorker(job, port);
  return settleOnExit<ReplyOf<J>>(worker, 'worker', () => void worker.terminate(), signal);
}

/**
 * Copies the SQLite database at `source` into the new file `dest`, read-consistently, then makes the copy a
 * self-contained rollback-journal database, requires `PRAGMA quick_check` = ok, fsyncs it and (unless
 * `hash: false`) hashes it, in a child process of its own (see snapshot-copy.ts). On failure `dest` (and a `-journal`, `-wal` or `-shm` beside it) may exist: the caller owns cleanup.
 */
export function runSnapshotWorker(
  source: string,
  dest: string,
  options: SnapshotOptions = {},
): Promise<SnapshotResult> {
  const job: SnapshotJob = {
    op: 'snapshot',
    source: path.resolve(source),
    dest: path.resolve(dest),
    busyTimeoutMs: options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS,
    maxSteps: options.maxSteps ?? DEFAULT_MAX_STEPS,
    hash: options.hash ?? true,
  };
  return runSnapshotChild(
    {
      ...job,
      nice: options.nice ?? DEFAULT_SNAPSHOT_NICE,
      idle: options.idle ?? DEFAULT_SNAPSHOT_IDLE,
      checkThreads: options.checkThreads ?? DEFAULT_CHECK_THREADS,
    },
    options.signal,
  );
}

/** See {@link InspectJob}. Never rejects for a broken file (that is `opened: false`), only for a worker failure. */
export async function runInspectWorker(
  file: string,
  options: { integrity: IntegrityLevel; hash: boolean; makeStandalone?: boolean },
): Promise<InspectResult> {
  const result = await runWorkerJob({
    op: 'inspect',
    file: path.resolve(file),
    integrity: options.integrity,
    hash: options.hash,
    makeStandalone: options.makeStandalone ?? false,
  });
  if (result.opened && result.schemaVersion !== null) {
    result.schemaCheck = await checkSchema(result.schema, result.schemaVersion);
  }
  return result;
}

export interface RestoreOptions {
  busyTimeoutMs?: number;
  maxWaitMs?: number;
  /**
   * Runs while the worker holds `dest`'s write lock and before any page is copied (see RestoreJob). When it
   * throws, nothing is copied, the lock is released and the restore rejects with that error.
   */
  whileLocked?: () => Promise<void>;
  /**
   * Checkpoint `dest` after the copy (default true). False while replication ships the WAL: the shipper is then the
   * only checkpointer, and a TRUNCATE here would cut frames it has not shipped yet.
   */
  checkpoint?: boolean;
}

/** See {@link RestoreJob}. */
export async function runRestoreWorker(
  source: string,
  dest: string,
  options: RestoreOptions = {},
): Promise<RestoreResult> {
  const job: RestoreJob = {
    op: 'restore',
    source: path.resolve(source),
    dest: path.resolve(dest),
    busyTimeoutMs: options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS,
    maxWaitMs: options.maxWaitMs ?? DEFAULT_RESTORE_MAX_WAIT_MS,
    handshake: options.whileLocked !== undefined,
    checkpoint: options.checkpoint ?? true,
  };
  const whileLocked = options.whileLocked;
  if (!whileLocked) {
    return runWorkerJob(job);
  }
  const channel = new MessageChannel();
  let lockedWorkFailure: unknown;
  let lockedWorkRan = false;
  channel.port1.on('message', (message: { type?: unknown }) => {
    if (message.type !== 'locked' || lockedWorkRan) {
      return;
    }
    lockedWorkRan = true;
    whileLocked().then(
      () => channel.port1.postMessage({ type: 'proceed' }),
      (error: unknown) => {
        lockedWorkFailure = error;
        channel.port1.postMessage({ type: 'abort' });
      },
    );
  });
  try {
    const result = await runWorkerJob(job, undefined, channel.port2);
    if (!lockedWorkRan) {
      throw new SnapshotError('Restore worker never took the write lock');
    }
    return result;
  } catch (error) {
    throw lockedWorkFailure ?? error;
  } finally {
    channel.port1.close();
  }
}

/** See {@link ProbeJob}. Rejects only when the worker itself failed (it did not start, or died). */
export async function runProbeWorker(
  file: string,
  options: { busyTimeoutMs?: number; nativeBinding?: string } = {},
): Promise<DatabaseCheck> {
  const { check } = await runWorkerJob({
    op: 'probe',
    file: path.resolve(file),
    busyTimeoutMs: options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS,
    ...(options.nativeBinding !== undefined ? { nativeBinding: options.nativeBinding } : {}),
  });
  return check;
}

/** See {@link CarryOverJob}. */
export function runCarryOverWorker(job: Omit<CarryOverJob, 'op' | 'busyTimeoutMs'>): Promise<CarryOverResult> {
  return runWorkerJob({ op: 'carry_over', busyTimeoutMs: DEFAULT_BUSY_TIMEOUT_MS, ...job });
}

/** See {@link CopyJob}: a closed file of the backups folder, byte for byte, with the sha256 of what was written. */
export function runCopyWorker(source: string, dest: string): Promise<CopyResult> {
  return runWorkerJob({ op: 'copy', source: path.resolve(source), dest: path.resolve(dest) });
}
