import Database from 'better-sqlite3';
import { closeQuietly } from '../sqlite/close-quietly';

/**
 * Tells whether anyone has committed to the live database since the watch began. `PRAGMA data_version` of a
 * connection changes with every commit made by any other connection (the service's own included, since this one is
 * separate) and with nothing else that matters here; a checkpoint or a WAL reset may change it too, which only makes
 * the answer more careful. The connection is SQLite's (the service never opens the live files itself) and read-only,
 * so closing it never checkpoints or removes the WAL under the replication shipper.
 */
export class CommitWatch {
  private readonly db: Database.Database;
  private readonly first: number;

  constructor(dbPath: string, busyTimeoutMs: number) {
    this.db = new Database(dbPath, { readonly: true, fileMustExist: true, timeout: busyTimeoutMs });
    try {
      this.first = this.version();
    } catch (error) {
      closeQuietly(this.db);
      throw error;
    }
  }

  /** No commit since the watch began. Only conclusive while the caller holds the write lock. */
  unchanged(): boolean {
    return this.version() === this.first;
  }

  close(): void {
    closeQuietly(this.db);
  }

  private version(): number {
    return Number(this.db.pragma('data_version', { simple: true }));
  }
}
