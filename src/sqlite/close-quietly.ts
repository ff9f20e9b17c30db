import type Database from 'better-sqlite3';

/** Closes a connection after an earlier failure: a close error must not mask the error that matters. */
export function closeQuietly(db: Database.Database | undefined): void {
  try {
    db?.close();
  } catch {
    // The earlier error is the one reported.
  }
}
