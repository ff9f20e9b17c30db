import type { Database } from 'better-sqlite3';

/**
 * Tables that describe the backups folder and the scheduler's runs rather than the application's data. A restore
 * (online or offline) must carry them across, or restoring an old backup would forget the checksums of every
 * newer backup, including the safety copy just taken.
 */
export const CARRIED_TABLES = ['backup_manifests', 'scheduler_tasks', 'offsite_uploads'] as const;
export type CarriedRows = Map<string, Record<string, unknown>[]>;

export function readCarried(db: Database): CarriedRows {
  const rows: CarriedRows = new Map();
  for (const table of CARRIED_TABLES) {
    const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table);
    if (exists !== undefined) {
      rows.set(table, db.prepare(`SELECT * FROM "${table}"`).all() as Record<string, unknown>[]);
    }
  }
  return rows;
}

/** Replaces the carried tables' rows in `db` (the restored, migrated database), in one transaction. */
export function writeCarried(db: Database, carried: CarriedRows): void {
  db.transaction(() => {
    for (const [table, rows] of carried) {
      // Only columns the restored schema has: the two databases may have been on different migrations.
      const columns = new Set((db.pragma(`table_info("${table}")`) as { name: string }[]).map((c) => c.name));
      if (columns.size === 0) {
        continue;
      }
      db.prepare(`DELETE FROM "${table}"`).run();
      for (const row of rows) {
        const names = Object.keys(row).filter((c) => columns.has(c));
        db.prepare(
          `INSERT INTO "${table}" (${names.map((c) => `"${c}"`).join(', ')}) VALUES (${names.map(() => '?').join(', ')})`,
        ).run(...names.map((c) => row[c]));
      }
    }
  }).immediate();
}
