/**
 * Runs in a worker thread (see snapshot.ts). Everything here may block: that is the point of being off the main
 * thread. Keep imports to node built-ins and better-sqlite3 so the worker starts fast and never pulls in Nest.
 */
import * as fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { SnapshotJob, SnapshotWorkerReply } from './snapshot';

/**
 * better-sqlite3 clamps the page count per step to 2^31-1. Any database SQLite can hold at the default page size
 * fits, so the copy runs as one sqlite3_backup_step under one read transaction and cannot be restarted by writers.
 */
const ALL_PAGES = 0x7fffffff;

function closeQuietly(db: Database.Database | undefined): void {
  try {
    db?.close();
  } catch {
    // A close failure after an earlier error must not mask that error.
  }
}

async function copyDatabase(job: SnapshotJob): Promise<{ steps: number }> {
  let source: Database.Database | undefined;
  try {
    source = new Database(job.source, { fileMustExist: true, timeout: job.busyTimeoutMs });
    // Read-write open (a read-only one cannot always attach to a WAL database), but this connection never writes.
    source.pragma('query_only = ON');
    let steps = 1;
    // better-sqlite3 always makes a first step of 0 pages and only then asks for a rate. Every further call means
    // SQLITE_BUSY or a restart, each of which already waited for the busy timeout; give up after a few.
    await source.backup(job.dest, {
      progress: () => {
        steps += 1;
        if (steps > job.maxSteps) {
          throw new Error('Backup did not complete: source database stayed busy');
        }
        return ALL_PAGES;
      },
    });
    return { steps };
  } finally {
    closeQuietly(source);
  }
}

function makeStandalone(dest: string): { pages: number; pageSize: number; quickCheck: string } {
  let copy: Database.Database | undefined;
  try {
    copy = new Database(dest, { fileMustExist: true });
    // The copy inherits the source's WAL flag; left as is, every later open would create -wal/-shm files.
    const mode = copy.pragma('journal_mode = DELETE', { simple: true });
    if (mode !== 'delete') {
      throw new Error('Could not switch the copy to rollback-journal mode');
    }
    copy.close();
    copy = new Database(dest, { readonly: true, fileMustExist: true });
    const quickCheck = String(copy.pragma('quick_check', { simple: true }));
    const pages = Number(copy.pragma('page_count', { simple: true }));
    const pageSize = Number(copy.pragma('page_size', { simple: true }));
    return { pages, pageSize, quickCheck };
  } finally {
    closeQuietly(copy);
  }
}

function fsyncFile(file: string): number {
  const fd = fs.openSync(file, 'r');
  try {
    fs.fsyncSync(fd);
    return fs.fstatSync(fd).size;
  } finally {
    fs.closeSync(fd);
  }
}

async function run(job: SnapshotJob): Promise<SnapshotWorkerReply> {
  switch (job.op) {
    case 'snapshot': {
      const started = performance.now();
      const { steps } = await copyDatabase(job);
      const copyMs = performance.now() - started;
      const { pages, pageSize, quickCheck } = makeStandalone(job.dest);
      if (quickCheck !== 'ok') {
        return { ok: false, message: 'Backup copy failed quick_check', detail: quickCheck };
      }
      const size = fsyncFile(job.dest);
      return { ok: true, pages, pageSize, size, steps, quickCheck, copyMs, totalMs: performance.now() - started };
    }
    default:
      return { ok: false, message: 'Unknown snapshot worker operation' };
  }
}

function toFailure(err: unknown): SnapshotWorkerReply {
  const e = err as { message?: unknown; code?: unknown } | null;
  return {
    ok: false,
    message: typeof e?.message === 'string' ? e.message : 'Snapshot worker failed',
    code: typeof e?.code === 'string' ? e.code : undefined,
  };
}

if (parentPort) {
  const port = parentPort;
  void run(workerData as SnapshotJob)
    .catch(toFailure)
    .then((reply) => port.postMessage(reply));
}
