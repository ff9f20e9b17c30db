import Database from 'better-sqlite3';
import type { InspectResult } from '../sqlite/snapshot';
import { SCHEMA_VERSION } from '../database/migrations';
import { admit, type Checksum, compareChecksum } from './admission';
import { writeCarried } from './carried-state';

function restoreProblems(check: InspectResult, checksum: Checksum, livePageSize: number | null = null): string[] {
  return admit({ check, checksum, livePageSize }).problems;
}

const SOUND: InspectResult = {
  ok: true,
  size: 4096,
  opened: true,
  integrity: 'ok',
  sha256: 'a'.repeat(64),
  pageCount: 1,
  pageSize: 4096,
  sqliteVersion: '3.50.0',
  schemaVersion: SCHEMA_VERSION,
  tables: ['users', 'sessions', 'settings', 'audit_log', 'scheduler_tasks', 'migrations'],
  schema: [],
  encoding: 'UTF-8',
  schemaCheck: { problems: [], foreignTables: [] },
  admins: 1,
  converted: false,
  ms: 1,
};

describe('admission', () => {
  describe('admit', () => {
    it('should accept a sound backup of this application', () => {
      expect(restoreProblems(SOUND, 'unknown')).toEqual([]);
      expect(restoreProblems(SOUND, 'match')).toEqual([]);
    });

    it.each([
      ['a checksum mismatch', SOUND, 'mismatch', /sha256/],
      ['corruption', { ...SOUND, integrity: '*** in database main ***' }, 'unknown', /corrupt/],
      ['a newer schema', { ...SOUND, schemaVersion: SCHEMA_VERSION + 1 }, 'unknown', /newer/],
      ['no admin', { ...SOUND, admins: 0 }, 'unknown', /admin/],
      ['a foreign database', { ...SOUND, tables: ['marker'] }, 'unknown', /Not a Mission Control/],
      [
        'a trigger the application does not create',
        { ...SOUND, schemaCheck: { problems: ['trigger "t" is not created by this application'], foreignTables: [] } },
        'unknown',
        /schema is not this application's: trigger "t"/,
      ],
      ['an unchecked schema', { ...SOUND, schemaCheck: null }, 'unknown', /could not be checked/],
      ['UTF-16 text', { ...SOUND, encoding: 'UTF-16le' }, 'unknown', /UTF-16le/],
    ] as [string, InspectResult, Checksum, RegExp][])('should refuse %s', (_label, check, checksum, reason) => {
      expect(restoreProblems(check, checksum).join('; ')).toMatch(reason);
    });

    it('should refuse a page size other than the live database’s, and ignore it on a bare machine', () => {
      expect(restoreProblems({ ...SOUND, pageSize: 8192 }, 'unknown', 4096).join('; ')).toMatch(
        /page size \(8192 bytes\) differs from the live database's \(4096 bytes\)/,
      );
      expect(restoreProblems({ ...SOUND, pageSize: 8192 }, 'unknown', null)).toEqual([]);
    });

    it('should say a migration is needed for an older schema, and list foreign tables', () => {
      const verdict = admit({
        check: { ...SOUND, schemaVersion: SCHEMA_VERSION - 1, schemaCheck: { problems: [], foreignTables: ['pin'] } },
        checksum: 'match',
        livePageSize: 4096,
      });
      expect(verdict).toEqual({ problems: [], foreignTables: ['pin'], needsMigration: true });
    });
  });

  describe('compareChecksum', () => {
    it('should be unknown without a recorded value', () => {
      expect(compareChecksum(null, 'a')).toBe('unknown');
      expect(compareChecksum('a', 'a')).toBe('match');
      expect(compareChecksum('a', 'b')).toBe('mismatch');
    });
  });

  describe('writeCarried', () => {
    it('should replace the rows and keep only columns the restored table has', () => {
      const db = new Database(':memory:');
      db.exec(
        "CREATE TABLE backup_manifests (name TEXT PRIMARY KEY, sha256 TEXT); INSERT INTO backup_manifests VALUES ('old.db', 'x')",
      );
      writeCarried(db, new Map([['backup_manifests', [{ name: 'new.db', sha256: 'y', column_from_the_future: 1 }]]]));
      expect(db.prepare('SELECT * FROM backup_manifests').all()).toEqual([{ name: 'new.db', sha256: 'y' }]);
      db.close();
    });
  });
});
