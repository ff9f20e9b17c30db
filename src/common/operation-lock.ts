import { Injectable } from '@nestjs/common';
import { Mutex } from 'async-mutex';

export type Operation = 'backup' | 'restore';

/**
 * One backup-or-restore at a time in this process. Callers queue (FIFO) rather than fail: a trigger and the
 * 03:00 cron firing together each get their own backup, one after the other, never overlapping.
 */
@Injectable()
export class OperationLock {
  private readonly mutex = new Mutex();
  private current: Operation | null = null;

  /** What is running now, if anything (a restore makes other mutating requests answer 503). */
  get running(): Operation | null {
    return this.current;
  }

  runExclusive<T>(operation: Operation, work: () => Promise<T>): Promise<T> {
    return this.mutex.runExclusive(async () => {
      this.current = operation;
      try {
        return await work();
      } finally {
        this.current = null;
      }
    });
  }

  /** Resolves once nothing is running or queued; for graceful shutdown. */
  waitForIdle(): Promise<void> {
    return this.mutex.waitForUnlock();
  }
}
