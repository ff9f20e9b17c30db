import { Injectable, Logger } from '@nestjs/common';
import { Mutex } from 'async-mutex';
import { AsyncLocalStorage } from 'node:async_hooks';

export type Operation = 'backup' | 'restore';

/** One run of an operation: a fresh object each time, so an async flow left over from an earlier run never matches. */
interface Run {
  operation: Operation;
}

/**
 * One backup-or-restore at a time in this process. Callers queue (FIFO) rather than fail: a trigger and the
 * 03:00 cron firing together each get their own backup, one after the other, never overlapping.
 *
 * While a restore runs, a worker holds the live database's write lock for the safety copy and the page copy, and
 * a write on the main connection would wait for it synchronously (the busy timeout), freezing every request. So
 * the rest of the service asks `writesHeld` before writing and waits on `restoreFinished()` (audit rows are queued
 * instead); the restore's own flow (`insideRun`) writes as it always did.
 */
@Injectable()
export class OperationLock {
  private readonly logger = new Logger(OperationLock.name);
  private readonly mutex = new Mutex();
  private readonly runs = new AsyncLocalStorage<Run>();
  private current: Run | null = null;
  private finished: { promise: Promise<void>; resolve: () => void } | null = null;
  private readonly finishListeners = new Set<(operation: Operation) => void>();

  /** What is running now, if anything (a restore makes other mutating requests answer 503). */
  get running(): Operation | null {
    return this.current?.operation ?? null;
  }

  /** True in the async flow of the operation that is running now (and in nothing it left behind after it ended). */
  get insideRun(): boolean {
    return this.current !== null && this.runs.getStore() === this.current;
  }

  /** A restore is running and the caller is not part of it: the caller must not write to the live database now. */
  get writesHeld(): boolean {
    return this.current?.operation === 'restore' && !this.insideRun;
  }

  /** Resolves once no restore is running (at once when none is). */
  async restoreFinished(): Promise<void> {
    while (this.current?.operation === 'restore') {
      this.finished ??= promiseWithResolve();
      await this.finished.promise;
    }
  }

  /**
   * Called synchronously as each operation ends, before its caller resumes and before the next queued one starts:
   * what waited for it is written while nothing else can be. Returns the unsubscribe function.
   */
  onFinished(listener: (operation: Operation) => void): () => void {
    this.finishListeners.add(listener);
    return () => this.finishListeners.delete(listener);
  }

  runExclusive<T>(operation: Operation, work: () => Promise<T>): Promise<T> {
    return this.mutex.runExclusive(async () => {
      const run: Run = { operation };
      this.current = run;
      try {
        return await this.runs.run(run, work);
      } finally {
        this.current = null;
        for (const listener of this.finishListeners) {
          try {
            listener(operation);
          } catch (error) {
            this.logger.error(`After the ${operation}: ${String(error)}`);
          }
        }
        const finished = this.finished;
        this.finished = null;
        finished?.resolve();
      }
    });
  }

  /** Resolves once nothing is running or queued; for graceful shutdown. */
  waitForIdle(): Promise<void> {
    return this.mutex.waitForUnlock();
  }
}

function promiseWithResolve(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
