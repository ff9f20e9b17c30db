import Database from 'better-sqlite3';
import * as fs from 'node:fs';

/** How long to wait out a short-lived reader (a backup worker, a sqlite3 shell's query) before calling it busy. */
export const LOCK_WAIT_MS = 1000;

export class DatabaseInUseError extends Error {
  constructor() {
    super(
      'The database is in use by another process (the service appears to be running): stop it first, ' +
        'or restore online through POST /api/backup/restore',
    );
    this.name = 'DatabaseInUseError';
  }
}

/**
 * An exclusive SQLite lock on the live database, held until {@link release}.
 *
 * Why this is a reliable "is the service running" test: in WAL mode every connection that has read the database
 * keeps a SHARED lock on the database file for as long as it stays open (SQLite never drops it between
 * transactions), and the service keeps its one connection open from start to stop. A connection in
 * `locking_mode=EXCLUSIVE` must take an EXCLUSIVE lock on the file to begin a transaction, which is impossible
 * while any such SHARED lock exists, so `BEGIN EXCLUSIVE` fails with SQLITE_BUSY exactly while some process has the
 * database open. Unlike a pid file it cannot go stale: the kernel drops the locks of a process that dies, however it
 * dies. Limits: POSIX locks are unreliable on some network filesystems, and a process that opened the database but
 * never read it holds no lock (the service reads it at start-up, so it always holds one).
 *
 * While held, no other connection can read or write; the exclusive-mode connection never uses the `-shm` file and
 * writes nothing itself (closing it checkpoints an existing `-wal` into the file, as any last connection would).
 */
export class DatabaseLock {
  private constructor(private readonly db: Database.Database) {}

  /** Null when there is no database file to lock. Throws DatabaseInUseError when another connection holds it. */
  static acquire(dbPath: string, waitMs = LOCK_WAIT_MS): DatabaseLock | null {
    if (!fs.existsSync(dbPath)) {
      return null;
    }
    const db = new Database(dbPath, { fileMustExist: true, timeout: waitMs });
    try {
      // Must be set before the first read: only then does a WAL database skip shared memory entirely.
      db.pragma('locking_mode = EXCLUSIVE');
      db.exec('BEGIN EXCLUSIVE');
      // In exclusive locking mode the lock outlives the (empty) transaction.
      db.exec('COMMIT');
      return new DatabaseLock(db);
    } catch (error) {
      db.close();
      if (String((error as { code?: unknown }).code).startsWith('SQLITE_BUSY')) {
        throw new DatabaseInUseError();
      }
      throw error;
    }
  }

  release(): void {
    if (this.db.open) {
      this.db.close();
    }
  }
}
