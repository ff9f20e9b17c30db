import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DatabaseInUseError, DatabaseLock } from './database-lock';

describe(DatabaseLock.name, () => {
  let dir: string;
  let dbPath: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(tmpdir(), 'mc-lock-'));
    dbPath = path.join(dir, 'live.db');
    const db = new Database(dbPath);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t(x); INSERT INTO t VALUES (1)');
    db.close();
  });

  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('acquire', () => {
    it('should return null when there is no database', () => {
      expect(DatabaseLock.acquire(path.join(dir, 'absent.db'))).toBeNull();
      expect(fs.existsSync(path.join(dir, 'absent.db'))).toBe(false);
    });

    it('should refuse while an idle WAL connection that has read the database stays open', () => {
      const service = new Database(dbPath);
      service.prepare('SELECT * FROM t').all();
      try {
        expect(() => DatabaseLock.acquire(dbPath, 50)).toThrow(DatabaseInUseError);
      } finally {
        service.close();
      }
    });

    it('should keep every other connection out until released', () => {
      const lock = DatabaseLock.acquire(dbPath, 50);
      expect(lock).not.toBeNull();
      const other = new Database(dbPath, { timeout: 50 });
      try {
        expect(() => other.prepare('SELECT * FROM t').all()).toThrow(/locked/);
        lock?.release();
        expect(other.prepare('SELECT * FROM t').all()).toEqual([{ x: 1 }]);
      } finally {
        other.close();
      }
    });
  });
});
