/**
 * The `snapshot` job as it runs in its own child process (see snapshot.child.ts and runSnapshotWorker): a hot copy
 * of the live database into a temp file by SQLite's online backup API in one step (one read transaction, so
 * writers cannot restart it), made standalone, then quick_checked, fsynced and hashed side by side.
 *
 * The child never opens the live database's files except through SQLite: on POSIX, closing any descriptor of a
 * file drops every lock the whole process holds on it (sqlite.org/howtocorrupt §2.2).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { BACKGROUND_READ_BYTES } from '../common/io-chunk';
import { closeQuietly } from './close-quietly';
import type { CheckThreads, SnapshotJob, SnapshotWorkerReply } from './snapshot';

const ALL_PAGES = 0x7fffffff;
/** Map the copy for quick_check (this process only: the mapping never touches the service's RSS). */
const MMAP_LIMIT = 0x7fff0000;
const MIGRATIONS_TABLE = 'migrations';

const fsyncAsync = promisify(fs.fsync);

export type CopyMethod = 'backup-api';

export interface SnapshotJobOptions {
  /** Use memory-mapped reads (child process only: a mapping of the file counts in this process's RSS). */
  mmap: boolean;
  checkThreads?: CheckThreads;
}

/** Whether quick_check and sha256 get a thread each: only when another core is free for the second one. */
export function checksInParallel(
  mode: CheckThreads | undefined,
  cores = os.availableParallelism(),
  load = os.loadavg()[0],
): boolean {
  if (mode === 'serial') {
    return false;
  }
  if (mode === 'auto') {
    return cores > 1 && load < cores - 1;
  }
  return true;
}

/** Marks `p` as handled now (it is awaited later), so an early failure does not count as an unhandled rejection. */
function settledLater<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

interface CopyResult {
  method: CopyMethod;
  steps: number;
  /** Computed on the way when the copy streams through this process; null otherwise. */
  sha256: string | null;
}

/** SQLite's online backup API in one step (one read transaction; writers cannot restart it), then DELETE mode. */
async function backupApiCopy(job: SnapshotJob, mmap: boolean): Promise<CopyResult> {
  let source: Database.Database | undefined;
  let steps = 1;
  try {
    source = new Database(job.source, { fileMustExist: true, timeout: job.busyTimeoutMs });
    source.pragma('query_only = ON');
    if (mmap) {
      source.pragma(`mmap_size = ${MMAP_LIMIT}`);
    }
    await source.backup(job.dest, {
      progress: () => {
        steps += 1;
        if (steps > job.maxSteps) {
          throw new Error('Backup did not complete: source database stayed busy');
        }
        return ALL_PAGES;
      },
    });
  } finally {
    closeQuietly(source);
  }
  let copy: Database.Database | undefined;
  try {
    copy = new Database(job.dest, { fileMustExist: true });
    // The copy inherits the source's WAL flag; left as is, every later open would create -wal/-shm files.
    if (copy.pragma('journal_mode = DELETE', { simple: true }) !== 'delete') {
      throw new Error('Could not switch the copy to rollback-journal mode');
    }
  } finally {
    closeQuietly(copy);
  }
  return { method: 'backup-api', steps, sha256: null };
}

interface CopyFacts {
  pages: number;
  pageSize: number;
  quickCheck: string;
  sqliteVersion: string;
  schemaVersion: number | null;
}

function checkCopy(dest: string, mmap: boolean): CopyFacts {
  let copy: Database.Database | undefined;
  try {
    copy = new Database(dest, { readonly: true, fileMustExist: true });
    if (mmap) {
      copy.pragma(`mmap_size = ${MMAP_LIMIT}`);
    }
    const quickCheck = String(copy.pragma('quick_check', { simple: true }));
    const pages = Number(copy.pragma('page_count', { simple: true }));
    const pageSize = Number(copy.pragma('page_size', { simple: true }));
    const sqliteVersion = String(copy.prepare('SELECT sqlite_version()').pluck().get());
    const hasMigrations =
      copy.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?").get(MIGRATIONS_TABLE) !== undefined;
    let schemaVersion: number | null = null;
    if (hasMigrations) {
      const v = copy.prepare(`SELECT MAX("timestamp") FROM "${MIGRATIONS_TABLE}"`).pluck().get();
      schemaVersion = typeof v === 'number' || typeof v === 'bigint' ? Number(v) : null;
    }
    return { pages, pageSize, quickCheck, sqliteVersion, schemaVersion };
  } finally {
    closeQuietly(copy);
  }
}

/** sha256 of a finished file in a thread of its own, so that it runs beside quick_check on the other core. */
function hashInThread(file: string): Promise<string> {
  const code = `
    const { createHash } = require('node:crypto');
    const fs = require('node:fs');
    const { parentPort, workerData } = require('node:worker_threads');
    const hash = createHash('sha256');
    const fd = fs.openSync(workerData, 'r');
    try {
      const buffer = Buffer.allocUnsafe(${BACKGROUND_READ_BYTES});
      for (;;) {
        const n = fs.readSync(fd, buffer, 0, buffer.length, null);
        if (n === 0) break;
        hash.update(buffer.subarray(0, n));
      }
    } finally {
      fs.closeSync(fd);
    }
    parentPort.postMessage(hash.digest('hex'));`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, { eval: true, workerData: file });
    let digest: string | undefined;
    worker.on('message', (value: string) => {
      digest = value;
    });
    worker.on('error', reject);
    worker.on('exit', (code) => {
      if (digest === undefined) {
        reject(new Error(`Hashing thread exited with code ${code}`));
      } else {
        resolve(digest);
      }
    });
  });
}

async function fsyncFile(file: string): Promise<number> {
  const fd = fs.openSync(file, 'r');
  try {
    await fsyncAsync(fd);
    return fs.fstatSync(fd).size;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Copy, then — at the same time, since each only reads the finished file — quick_check (this thread), fsync (the
 * libuv pool) and, when the copy did not hash on the way, sha256 (a thread of its own).
 */
export async function runSnapshotJob(job: SnapshotJob, options: SnapshotJobOptions): Promise<SnapshotWorkerReply> {
  const started = performance.now();
  const copy = await backupApiCopy(job, options.mmap);
  const copyMs = performance.now() - started;
  const checkStarted = performance.now();
  let hashMs = 0;
  const parallel = checksInParallel(options.checkThreads);
  const hash = (): Promise<string | null> =>
    (job.hash && copy.sha256 === null ? hashInThread(job.dest) : Promise.resolve(copy.sha256)).then((digest) => {
      hashMs = performance.now() - checkStarted;
      return digest;
    });
  let hashing = parallel ? hash() : null;
  const syncing = fsyncFile(job.dest);
  if (hashing) {
    void settledLater(hashing);
  }
  void settledLater(syncing);
  // Let the pool start the fsync (and the thread its reads) before this thread blocks in quick_check.
  await new Promise<void>((resolve) => setImmediate(resolve));
  let facts: CopyFacts;
  try {
    facts = checkCopy(job.dest, options.mmap);
    hashing ??= facts.quickCheck === 'ok' ? hash() : Promise.resolve(null);
  } finally {
    // Never leave a read or fsync of the copy running when the caller removes it.
    await Promise.allSettled([hashing ?? Promise.resolve(null), syncing]);
  }
  const checkMs = performance.now() - checkStarted;
  if (facts.quickCheck !== 'ok') {
    return { ok: false, message: 'Backup copy failed quick_check', detail: facts.quickCheck };
  }
  const [sha256, size] = await Promise.all([hashing, syncing]);
  return {
    ok: true,
    pages: facts.pages,
    pageSize: facts.pageSize,
    size,
    steps: copy.steps,
    quickCheck: 'ok',
    copyMs,
    totalMs: performance.now() - started,
    sha256: job.hash ? sha256 : null,
    sqliteVersion: facts.sqliteVersion,
    schemaVersion: facts.schemaVersion,
    hashMs,
    checkMs,
    method: copy.method,
  };
}
