import type { Database } from 'better-sqlite3';

/** Injection token for the raw better-sqlite3 connection that TypeORM opened (same connection, same WAL). */
export const SQLITE_HANDLE = Symbol('SQLITE_HANDLE');
export type SqliteHandle = Database;
