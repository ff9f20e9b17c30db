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
