import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import { applicationProblem, type Checksum } from '../backups/recovery.service';
import type { InspectResult } from '../backups/snapshot';

/**
 * Why a backup must not become the live database; empty when it may. The same rules as the online restore
 * (RecoveryService.restore: applicationProblem and the checksum), plus the admin it requires after the copy, which
 * offline can only be checked on the backup itself.
 */
export function restoreProblems(check: InspectResult, checksum: Checksum): string[] {
  const problems: string[] = [];
  if (checksum === 'mismatch') {
    problems.push('its sha256 does not match the one recorded when it was made');
  }
  const problem = applicationProblem(check);
  if (problem !== null) {
    problems.push(problem);
  } else if (check.admins === null || check.admins < 1) {
    problems.push('it has no admin user, so nobody could manage the restored service');
  }
  return problems;
}

export function compareChecksum(recorded: string | null, actual: string | null): Checksum {
  if (recorded === null || actual === null) {
    return 'unknown';
  }
  return recorded === actual ? 'match' : 'mismatch';
}

/**
 * The sha256 the live database's manifest recorded for `name`, read without booting the app (which would migrate
 * the file we are about to replace). Null when there is no database, no manifest table or no row, or it cannot be
 * read (a damaged live database is a reason to restore, not a reason to refuse).
 */
export function recordedSha256(dbPath: string, name: string): string | null {
  if (!fs.existsSync(dbPath)) {
    return null;
  }
  let db: Database.Database | undefined;
  try {
    db = new Database(dbPath, { fileMustExist: true, timeout: 1000 });
    db.pragma('query_only = ON');
    const row = db.prepare('SELECT sha256 FROM backup_manifests WHERE name = ?').get(name) as
      { sha256: string | null } | undefined;
    return row?.sha256 ?? null;
  } catch {
    return null;
  } finally {
    try {
      db?.close();
    } catch {
      // Only a lookup: nothing to report.
    }
  }
}

/**
 * Rows of the tables that describe the backups folder and the scheduler's runs (RecoveryService's carried tables),
 * read from the safety copy: they must survive a restore, or restoring an old backup would forget the checksums of
 * every newer backup. Read-only on a standalone rollback-journal file: no sidecar files are created.
 */
export const CARRIED_TABLES = ['backup_manifests', 'scheduler_tasks'] as const;
export type CarriedRows = Map<string, Record<string, unknown>[]>;

export function readCarried(file: string): CarriedRows {
  const rows: CarriedRows = new Map();
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    for (const table of CARRIED_TABLES) {
      const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table);
      if (exists !== undefined) {
        rows.set(table, db.prepare(`SELECT * FROM "${table}"`).all() as Record<string, unknown>[]);
      }
    }
  } finally {
    db.close();
  }
  return rows;
}

/** Replaces the carried tables' rows in `db` (the restored, migrated database), in one transaction. */
export function writeCarried(db: Database.Database, carried: CarriedRows): void {
  db.transaction(() => {
    for (const [table, rows] of carried) {
      // Only columns the restored schema has: the live database may have been on a different migration.
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
  })();
}
