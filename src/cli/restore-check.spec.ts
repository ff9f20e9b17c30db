import Database from 'better-sqlite3';
import type { Checksum } from '../backups/recovery.service';
import type { InspectResult } from '../backups/snapshot';
import { SCHEMA_VERSION } from '../database/migrations';
import { writeCarried } from '../backups/carried-state';
import { compareChecksum, restoreProblems } from './restore-check';

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

describe('restore checks', () => {
  describe('restoreProblems', () => {
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
