import type Database from 'better-sqlite3';
import { classifyTableSql } from './schema-facts';

/**
 * Reads every ordinary table to its end; a damaged one throws (SQLITE_CORRUPT). `integrity_check` and
 * `quick_check` (SQLite 3.53) pass a file whose table root page was overwritten with an index page although every
 * read of that table fails: found by the fuzz test, as an upload that was stored and could not be restored. It reads
 * every page of every table once, so it costs about as much as quick_check. Only tables SQLite's parser reads as b-tree tables are read: reading a virtual table would run its
 * module's code, and a pattern on the CREATE text is fooled by a comment between its words.
 */
export function readEveryTable(db: Database.Database): void {
  const tables = db.prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'table'").all() as Array<{
    name: string;
    sql: string | null;
  }>;
  for (const { name, sql } of tables) {
    if (classifyTableSql(sql) === 'ordinary') {
      db.prepare(`SELECT count(*) FROM "${name.replace(/"/g, '""')}"`).get();
    }
  }
}
