import { SCHEMA_VERSION } from '../database/migrations';
import { quote } from '../database/schema-check';
import type { InspectResult } from '../sqlite/snapshot';
import { UNUSABLE_HEADER } from '../sqlite/sqlite-header';

/** The tables that make a file this application's database (`migrations` is TypeORM's). */
export const REQUIRED_TABLES = ['users', 'sessions', 'settings', 'audit_log', 'scheduler_tasks', 'migrations'];

export type Checksum = 'match' | 'mismatch' | 'unknown';

/** A recorded sha256 against the one just computed; `unknown` when either is missing. */
export function compareChecksum(recorded: string | null | undefined, actual: string | null | undefined): Checksum {
  if (!recorded || !actual) {
    return 'unknown';
  }
  return recorded === actual ? 'match' : 'mismatch';
}

export interface AdmissionFacts {
  /** A full inspection of the candidate file (integrity_check, schema, admins). */
  check: InspectResult;
  /** The sha256 the candidate was promised to have (manifest, bucket manifest), compared with the file's own. */
  checksum: Checksum;
  /** The live database's page size; null when there is no live database (a bare machine). */
  livePageSize: number | null;
  /**
   * Refuse a file without an admin. The online restore leaves this to its own check on the result (after its
   * migrations), which answers 500 with the live database untouched, as the contract has it.
   */
  requireAdmin?: boolean;
}

export interface AdmissionVerdict {
  /** Empty when the file may become the live database. Each entry is one sentence for the operator. */
  problems: string[];
  /** Tables this application does not know, carried with their data. */
  foreignTables: string[];
  /** The file's schema is older than this build's: migrations run on a scratch copy before it goes live. */
  needsMigration: boolean;
}

const MAX_PROBLEMS_SHOWN = 10;

/**
 * The one answer to "may this file become the live database?", used by every way a file enters: upload, pull,
 * restore (online, CLI), disaster recovery from the bucket. Pure: it decides on what the inspect worker read through
 * SQLite, never on the file itself, and its messages name schema objects (sanitized), never quote content.
 */
export function admit(facts: AdmissionFacts): AdmissionVerdict {
  const { check } = facts;
  const problems: string[] = [];
  if (facts.checksum === 'mismatch') {
    problems.push('Its sha256 does not match the one recorded for it');
  }
  const application = applicationProblem(check);
  if (application !== null) {
    problems.push(application);
  } else {
    if (facts.livePageSize !== null && check.pageSize !== facts.livePageSize) {
      problems.push(
        `The database's page size (${check.pageSize} bytes) differs from the live database's ` +
          `(${facts.livePageSize} bytes), so it could never be restored`,
      );
    }
    if ((facts.requireAdmin ?? true) && (check.admins === null || check.admins < 1)) {
      problems.push('The database has no admin user, so it could never be restored (nobody could manage the service)');
    }
  }
  return {
    problems,
    foreignTables: check.schemaCheck?.foreignTables ?? [],
    needsMigration: check.schemaVersion !== null && check.schemaVersion < SCHEMA_VERSION,
  };
}

/** Why a file cannot be this application's database at all (whatever the live one is), or null. */
export function applicationProblem(check: InspectResult): string | null {
  if (!check.opened) {
    if (check.integrity?.startsWith(`${UNUSABLE_HEADER}: `)) {
      return `Not a database this service can restore: ${check.integrity.slice(UNUSABLE_HEADER.length + 2)}`;
    }
    return check.integrity === 'database file is truncated'
      ? 'Not a whole SQLite database: the file is truncated'
      : 'Not a SQLite database';
  }
  if (check.virtualTables?.length) {
    // Never integrity-checked (that would run the module): refused by name, before the corruption verdict.
    const shown = check.virtualTables
      .slice(0, MAX_PROBLEMS_SHOWN)
      .map((t) => `virtual table ${quote(t)} is not accepted`);
    return `The database schema is not this application's: ${shown.join('; ')}`;
  }
  if (check.integrity !== 'ok') {
    return 'The database is corrupt (integrity_check failed)';
  }
  if (check.encoding !== null && check.encoding.toUpperCase() !== 'UTF-8') {
    return `The database uses ${check.encoding.replace(/[^A-Za-z0-9-]/g, '')} text encoding; this application only restores UTF-8 databases`;
  }
  const missing = REQUIRED_TABLES.filter((table) => !check.tables.includes(table));
  if (missing.length > 0 || check.schemaVersion === null) {
    return 'Not a Mission Control database: application tables are missing';
  }
  if (check.schemaVersion > SCHEMA_VERSION) {
    return 'The database comes from a newer version of this application';
  }
  // An inspection of a file with a migration version always carries its schema verdict; one without it was never
  // compared, and an unchecked schema never becomes the live database.
  if (check.schemaCheck === null) {
    return 'The database schema could not be checked';
  }
  if (check.schemaCheck.problems.length > 0) {
    const shown = check.schemaCheck.problems.slice(0, MAX_PROBLEMS_SHOWN);
    const more = check.schemaCheck.problems.length - shown.length;
    return `The database schema is not this application's: ${shown.join('; ')}${more > 0 ? `; and ${more} more` : ''}`;
  }
  return null;
}
