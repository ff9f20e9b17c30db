/**
 * Grows an already migrated application database to a target size with incompressible filler rows, using
 * better-sqlite3 directly (the app is not running while this writes).
 */
import { randomFillSync } from 'node:crypto';
import Database from 'better-sqlite3';
import { MIB, progress } from './bench-util';

/** One row per 4 KiB page: 4000 bytes stay below a table leaf's 4061-byte local payload limit (no overflow). */
const PAYLOAD_BYTES = 4000;
/** Rows per transaction (~64 MiB of WAL, then one checkpoint). */
const ROWS_PER_TRANSACTION = 16_384;
/** Rows whose random payload is generated at once, sliced from one buffer. */
const ROWS_PER_CHUNK = 1024;

export interface FillResult {
  bytes: number;
  pageSize: number;
  rows: number;
  ms: number;
}

function databaseBytes(db: Database.Database): number {
  const pages = Number(db.pragma('page_count', { simple: true }));
  const pageSize = Number(db.pragma('page_size', { simple: true }));
  return pages * pageSize;
}

/**
 * Adds `bench_blob(id INTEGER PRIMARY KEY, payload BLOB)` rows of random bytes in large transactions until the
 * database file holds at least `targetBytes`, then checkpoints (TRUNCATE) so the main file is the whole database.
 */
export function fillDatabase(dbPath: string, targetBytes: number): FillResult {
  const started = performance.now();
  const db = new Database(dbPath, { fileMustExist: true });
  try {
    const mode = String(db.pragma('journal_mode = WAL', { simple: true }));
    if (mode !== 'wal') {
      throw new Error(`could not put the database in WAL mode (got ${mode})`);
    }
    // Only while filling: a crash here loses nothing of value, and it keeps the build fast.
    db.pragma('synchronous = OFF');
    db.exec('CREATE TABLE IF NOT EXISTS bench_blob (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)');
    const insert = db.prepare('INSERT INTO bench_blob (payload) VALUES (?)');
    const chunk = Buffer.allocUnsafe(PAYLOAD_BYTES * ROWS_PER_CHUNK);
    const insertMany = db.transaction((count: number) => {
      for (let done = 0; done < count; done += ROWS_PER_CHUNK) {
        const n = Math.min(ROWS_PER_CHUNK, count - done);
        randomFillSync(chunk, 0, n * PAYLOAD_BYTES);
        for (let i = 0; i < n; i++) {
          insert.run(chunk.subarray(i * PAYLOAD_BYTES, (i + 1) * PAYLOAD_BYTES));
        }
      }
    });

    const pageSize = Number(db.pragma('page_size', { simple: true }));
    let rows = 0;
    let lastReport = 0;
    for (let bytes = databaseBytes(db); bytes < targetBytes; bytes = databaseBytes(db)) {
      const missingPages = Math.ceil((targetBytes - bytes) / pageSize);
      const count = Math.max(1, Math.min(ROWS_PER_TRANSACTION, missingPages));
      insertMany(count);
      rows += count;
      if (bytes - lastReport >= 256 * MIB) {
        lastReport = bytes;
        progress(`  filled ${(bytes / MIB).toFixed(0)} / ${(targetBytes / MIB).toFixed(0)} MiB`);
      }
    }
    checkpointTruncate(db);
    return { bytes: databaseBytes(db), pageSize, rows, ms: performance.now() - started };
  } finally {
    db.close();
  }
}

/** Copies the whole WAL into the main file and empties the WAL; throws if a reader or writer prevented it. */
export function checkpointTruncate(db: Database.Database): void {
  const [result] = db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number; log: number; checkpointed: number }>;
  if (result.busy !== 0) {
    throw new Error(`wal_checkpoint(TRUNCATE) was blocked (${JSON.stringify(result)})`);
  }
}
