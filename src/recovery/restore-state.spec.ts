import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type Database from 'better-sqlite3';
import { DataSource } from 'typeorm';
import { MIGRATIONS } from '../database/migrations';
import { finishRestore, readLiveState } from './restore-state';

/**
 * Another process holds the write lock, then commits, at the moment a restore finishes. A deferred transaction
 * that reads before it writes (finishRestore does) would wait for the lock and then fail with SQLITE_BUSY
 * (its read snapshot is no longer the newest, and SQLite cannot retry that): under load that failed a restore in
 * `npm test`, rolled back. The finishing transaction takes the write lock first, so it waits and then succeeds.
 */
function holdWriteLock(dbPath: string, ms: number): Promise<{ committed: Promise<void> }> {
  const script = `
    const db = new (require('better-sqlite3'))(process.argv[1]);
    db.pragma('busy_timeout = 5000');
    db.exec('BEGIN IMMEDIATE');
    db.prepare("INSERT INTO audit_log (action, actor, target_id, detail, created_at) VALUES ('foreign', 'other', '', '{}', 0)").run();
    process.stdout.write('locked\\n');
    setTimeout(() => { db.exec('COMMIT'); db.close(); }, Number(process.argv[2]));
  `;
  const child = spawn(process.execPath, ['-e', script, dbPath, String(ms)], {
    cwd: path.resolve(__dirname, '..', '..'),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const committed = new Promise<void>((resolve, reject) => {
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`lock holder exited ${code}`))));
  });
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('locked')) {
        resolve({ committed });
      }
    });
    child.on('error', reject);
  });
}

describe('finishRestore beside another writer', () => {
  let dir: string;
  let dataSource: DataSource;
  let db: Database.Database;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'mc-restore-state-'));
    dataSource = new DataSource({
      type: 'better-sqlite3',
      database: path.join(dir, 'live.db'),
      migrations: MIGRATIONS,
      migrationsTransactionMode: 'each',
      logging: false,
    });
    await dataSource.initialize();
    db = (dataSource.driver as unknown as { databaseConnection: Database.Database }).databaseConnection;
    db.pragma('journal_mode = WAL');
    db.pragma('busy_timeout = 5000');
    await dataSource.runMigrations();
  });

  afterEach(async () => {
    await dataSource.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('waits for the other writer and then commits, keeping its row', async () => {
    const pre = readLiveState(db);
    const other = await holdWriteLock(path.join(dir, 'live.db'), 300);
    const now = Date.now();
    finishRestore(db, pre, {
      restoreId: 'r-1',
      copiedAuditSeq: pre.auditSeq,
      keepSessions: true,
      caller: null,
      now,
      event: {
        action: 'backup_restore',
        actor: 'admin',
        actorId: null,
        targetId: 'mc-backup-2026-01-01_03-00-00.db',
        detail: {},
        ip: null,
        userAgent: null,
        createdAt: now,
      },
    });
    await other.committed;
    const actions = (db.prepare('SELECT action FROM audit_log ORDER BY id').all() as { action: string }[]).map(
      (row) => row.action,
    );
    expect(actions).toEqual(expect.arrayContaining(['foreign', 'backup_restore']));
  });
});
