import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { runRestoreWorker } from './snapshot';

/**
 * The restore's commit gate (RestoreJob.commitGate): the worker copies every page but the last under the live
 * database's write lock, then waits for beforeCommit before the step that commits. Nothing may be visible, and no
 * other writer may get in, before the go-ahead; a failing beforeCommit commits nothing.
 */

// The worker thread compiles itself with ts-node on first use, which is slow on a cold cache.
const SLOW = 60_000;

let dir: string;
let livePath: string;
let backupPath: string;
let live: Database.Database;

function labels(db: Database.Database): string[] {
  return (db.prepare('SELECT label FROM items ORDER BY id').all() as Array<{ label: string }>).map((r) => r.label);
}

function makeDb(file: string, label: string, rows: number, wal: boolean): Database.Database {
  const db = new Database(file);
  if (wal) {
    db.pragma('journal_mode = WAL');
  }
  db.exec('CREATE TABLE items(id INTEGER PRIMARY KEY, label TEXT NOT NULL, pad BLOB)');
  const insert = db.prepare('INSERT INTO items (label, pad) VALUES (?, randomblob(3000))');
  db.transaction(() => {
    for (let i = 0; i < rows; i++) {
      insert.run(`${label}-${i}`);
    }
  })();
  return db;
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mc-restore-gate-'));
  livePath = path.join(dir, 'live.db');
  backupPath = path.join(dir, 'backup.db');
  makeDb(backupPath, 'backup', 300, false).close();
  live = makeDb(livePath, 'live', 5, true);
});

afterEach(() => {
  live.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('restore commit gate', () => {
  it(
    'should run whileLocked, then beforeCommit with the old data still visible and writers kept out, then commit',
    async () => {
      const order: string[] = [];
      const result = await runRestoreWorker(backupPath, livePath, {
        whileLocked: () => {
          order.push('locked');
          return Promise.resolve();
        },
        beforeCommit: () => {
          order.push('commit');
          // Every page but the last is copied, uncommitted: readers still see the live data.
          expect(labels(live)).toEqual(['live-0', 'live-1', 'live-2', 'live-3', 'live-4']);
          // The write lock is still the worker's.
          const other = new Database(livePath, { timeout: 0 });
          try {
            expect(() => other.prepare("INSERT INTO items (label) VALUES ('intruder')").run()).toThrow(/busy|locked/i);
          } finally {
            other.close();
          }
          return Promise.resolve();
        },
      });
      expect(order).toEqual(['locked', 'commit']);
      expect(result.pages).toBeGreaterThan(1);
      expect(labels(live)).toHaveLength(300);
      expect(labels(live)[0]).toBe('backup-0');
      expect(String(live.pragma('quick_check', { simple: true }))).toBe('ok');
    },
    SLOW,
  );

  it(
    'should commit nothing when beforeCommit fails, and release the lock',
    async () => {
      await expect(
        runRestoreWorker(backupPath, livePath, {
          whileLocked: () => Promise.resolve(),
          beforeCommit: () => Promise.reject(new Error('safety copy failed quick_check')),
        }),
      ).rejects.toThrow('safety copy failed quick_check');
      expect(labels(live)).toEqual(['live-0', 'live-1', 'live-2', 'live-3', 'live-4']);
      live.prepare("INSERT INTO items (label) VALUES ('after')").run();
      expect(labels(live)).toContain('after');
      expect(String(live.pragma('quick_check', { simple: true }))).toBe('ok');
    },
    SLOW,
  );

  it(
    'should never reach beforeCommit or copy when whileLocked fails',
    async () => {
      const beforeCommit = jest.fn(() => Promise.resolve());
      await expect(
        runRestoreWorker(backupPath, livePath, {
          whileLocked: () => Promise.reject(new Error('no safety copy')),
          beforeCommit,
        }),
      ).rejects.toThrow('no safety copy');
      expect(beforeCommit).not.toHaveBeenCalled();
      expect(labels(live)).toEqual(['live-0', 'live-1', 'live-2', 'live-3', 'live-4']);
    },
    SLOW,
  );
});
