import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

/**
 * Messages between {@link runSnapshotWorker} and snapshot.worker.ts. `op` leaves room for later jobs (for example
 * copying a backup's pages into the live database) that need the same off-thread treatment.
 */
export interface SnapshotJob {
  op: 'snapshot';
  source: string;
  dest: string;
  busyTimeoutMs: number;
  maxSteps: number;
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
    }
  | { ok: false; message: string; code?: string; detail?: string };

export type SnapshotResult = Extract<SnapshotWorkerReply, { ok: true }>;

export interface SnapshotOptions {
  /** SQLite busy timeout for the worker's own connection to the source. */
  busyTimeoutMs?: number;
  /** Give up after this many backup steps (each extra one is a busy wait or a restart). */
  maxSteps?: number;
  /** Aborting terminates the worker; the caller must still remove `dest` and its siblings. */
  signal?: AbortSignal;
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

function startWorker(job: SnapshotJob): Worker {
  // Compiled: the .js sibling. Under ts-jest / ts-node this file is .ts and so is the worker, which then needs a
  // TypeScript loader of its own; registering it explicitly keeps that independent of the working directory.
  if (__filename.endsWith('.ts')) {
    const workerFile = path.join(__dirname, 'snapshot.worker.ts');
    const tsNode = require.resolve('ts-node');
    const bootstrap =
      `require(${JSON.stringify(tsNode)}).register({ transpileOnly: true, skipProject: true, ` +
      `compilerOptions: { module: 'commonjs', target: 'es2022', esModuleInterop: true } });` +
      `require(${JSON.stringify(workerFile)});`;
    return new Worker(bootstrap, { eval: true, workerData: job });
  }
  return new Worker(path.join(__dirname, 'snapshot.worker.js'), { workerData: job });
}

/**
 * Copies the SQLite database at `source` into the new file `dest` in a worker thread, using the online backup API
 * in a single step on the worker's own connection, then makes the copy a self-contained rollback-journal database,
 * requires `PRAGMA quick_check` = ok, and fsyncs it. Resolves only after the worker has exited, so nothing still
 * holds `dest` open when the caller publishes or removes it. On failure `dest` (and a `-journal`, `-wal` or `-shm`
 * beside it) may exist: the caller owns cleanup.
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
  };
  const { signal } = options;
  if (signal?.aborted) {
    return Promise.reject(new SnapshotError('Snapshot aborted', 'ABORT_ERR'));
  }

  return new Promise<SnapshotResult>((resolve, reject) => {
    let reply: SnapshotWorkerReply | undefined;
    let failure: Error | undefined;
    let aborted = false;
    const worker = startWorker(job);

    const onAbort = (): void => {
      aborted = true;
      void worker.terminate();
    };
    signal?.addEventListener('abort', onAbort, { once: true });

    worker.on('message', (msg: SnapshotWorkerReply) => {
      reply = msg;
    });
    worker.on('error', (err: Error) => {
      failure ??= new SnapshotError(`Snapshot worker crashed: ${err.message}`);
    });
    worker.on('exit', (code) => {
      signal?.removeEventListener('abort', onAbort);
      if (aborted && !reply?.ok) {
        reject(new SnapshotError('Snapshot aborted', 'ABORT_ERR'));
      } else if (failure) {
        reject(failure);
      } else if (!reply) {
        reject(new SnapshotError(`Snapshot worker exited with code ${code} without a result`));
      } else if (!reply.ok) {
        reject(new SnapshotError(reply.message, reply.code, reply.detail));
      } else {
        resolve(reply);
      }
    });
  });
}
