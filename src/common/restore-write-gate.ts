import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { DataSource, type BeforeQueryEvent, type EntitySubscriberInterface } from 'typeorm';
import { SQLITE_HANDLE, type SqliteHandle } from '../database/sqlite-handle';
import { OperationLock } from './operation-lock';

/** Statements that never take the write lock. Anything else (BEGIN, INSERT, a CTE, …) counts as a write. */
const READ_ONLY = /^\s*(SELECT|PRAGMA|EXPLAIN)\b/i;

/**
 * Every statement TypeORM runs on the shared connection passes here first (TypeORM awaits `beforeQuery`). While a
 * restore runs, a write from anything but the restore itself waits here, asynchronously, until the restore ends,
 * instead of waiting synchronously for the write lock the restore's worker holds (which froze the event loop for
 * the busy timeout and then failed). Reads go on: in WAL mode they never wait for a writer.
 *
 * A statement inside a transaction that was already open passes: holding it would keep that transaction open
 * across the restore's own bookkeeping on the same connection. Transactions begin with a BEGIN, which is held, so
 * one begun during a restore waits as a whole.
 */
@Injectable()
export class RestoreWriteGate implements EntitySubscriberInterface, OnModuleInit {
  constructor(
    private readonly dataSource: DataSource,
    private readonly lock: OperationLock,
    @Inject(SQLITE_HANDLE) private readonly db: SqliteHandle,
  ) {}

  onModuleInit(): void {
    if (!this.dataSource.subscribers.includes(this)) {
      this.dataSource.subscribers.push(this);
    }
  }

  async beforeQuery(event: BeforeQueryEvent): Promise<void> {
    if (!this.lock.writesHeld || READ_ONLY.test(event.query) || this.db.inTransaction) {
      return;
    }
    await this.lock.restoreFinished();
  }
}
