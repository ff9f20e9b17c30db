import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { runCarryOverWorker, SnapshotError } from '../sqlite/snapshot';
import { ADMIN_CHECK_FAILED, type CarryOverJob } from './carry-over';

const SCHEMA = `
  CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL, role TEXT NOT NULL, created_at INTEGER NOT NULL);
  CREATE TABLE sessions (id INTEGER PRIMARY KEY AUTOINCREMENT, token_hash TEXT NOT NULL UNIQUE, user_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, ip_address TEXT, user_agent TEXT);
  CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_by TEXT, updated_at INTEGER NOT NULL);
  CREATE TABLE audit_log (id INTEGER PRIMARY KEY AUTOINCREMENT, action TEXT NOT NULL, actor TEXT NOT NULL,
    actor_id INTEGER, target_type TEXT, target_id TEXT, detail TEXT NOT NULL DEFAULT '{}', ip_address TEXT,
    user_agent TEXT, created_at INTEGER NOT NULL);
  CREATE TABLE backup_manifests (name TEXT PRIMARY KEY, kind TEXT NOT NULL, sha256 TEXT, created_at INTEGER NOT NULL);
`;

/**
 * The carry-over job as the runner sends it to the engine host worker: what comes back (the changes, the admin
 * count) and how a failure is told apart, 'health' (counting the admins) from 'carry_over' (everything before).
 */
describe('runCarryOverWorker', () => {
  let dir: string;
  let live: string;
  let scratch: string;

  function database(file: string, setup: string): void {
    const db = new Database(file);
    try {
      db.exec(setup);
    } finally {
      db.close();
    }
  }

  function job(overrides: Partial<Omit<CarryOverJob, 'op' | 'busyTimeoutMs'>> = {}) {
    return {
      live,
      scratch,
      safetyRow: { name: 'mc-safety-1.db', kind: 'safety', sha256: 'ab', created_at: 3 },
      restoreId: 'r-1',
      caller: null,
      now: 10,
      event: {
        action: 'backup_restore',
        actor: 'admin',
        actorId: null,
        targetId: 'mc-backup-1.db',
        detail: { name: 'mc-backup-1.db', restore_id: 'r-1' },
        ip: null,
        userAgent: null,
        createdAt: 10,
      },
      ...overrides,
    };
  }

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mc-carry-over-'));
    live = path.join(dir, 'live.db');
    scratch = path.join(dir, 'scratch.db');
    database(
      live,
      `PRAGMA journal_mode = WAL; ${SCHEMA}
       INSERT INTO users (username, password_hash, role, created_at) VALUES ('admin', 'h', 'admin', 1), ('carol', 'h', 'viewer', 1);
       INSERT INTO settings (key, value, updated_at) VALUES ('retention', '7', 1);
       INSERT INTO audit_log (action, actor, detail, user_agent, created_at) VALUES ('a', 'x', '{}', x'00ff', 1099511627783);
       INSERT INTO backup_manifests (name, kind, created_at) VALUES ('mc-backup-1.db', 'manual', 1);`,
    );
    database(
      scratch,
      `${SCHEMA} INSERT INTO users (username, password_hash, role, created_at) VALUES ('admin', 'h', 'admin', 1);`,
    );
  });

  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('should carry the live rows into the scratch copy and report the changes and the admins', async () => {
    const result = await runCarryOverWorker(job());

    expect(result).toEqual({
      ok: true,
      changes: { settings_changed: ['retention'], users_changed: true, users_added: [], users_removed: ['carol'] },
      admins: 1,
    });
    const db = new Database(scratch, { readonly: true });
    try {
      expect(db.prepare('SELECT name, kind FROM backup_manifests ORDER BY name').all()).toEqual([
        { name: 'mc-backup-1.db', kind: 'manual' },
        { name: 'mc-safety-1.db', kind: 'safety' },
      ]);
      const audit = db.prepare('SELECT action, user_agent, typeof(user_agent) AS t, created_at FROM audit_log').all();
      expect(audit).toEqual([
        { action: 'a', user_agent: Buffer.from([0x00, 0xff]), t: 'blob', created_at: 1099511627783 },
        { action: 'backup_restore', user_agent: null, t: 'null', created_at: 10 },
      ]);
    } finally {
      db.close();
    }
  });

  it('should count no admin when the result has none (the runner refuses it)', async () => {
    database(scratch, "UPDATE users SET role = 'viewer'");
    await expect(runCarryOverWorker(job())).resolves.toMatchObject({ admins: 0 });
  });

  it('should tag a failure to count the admins as the health step', async () => {
    database(scratch, 'DROP TABLE users; CREATE TABLE users_gone (id INTEGER)');
    const failure = await runCarryOverWorker(job()).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(SnapshotError);
    expect(failure).toMatchObject({ code: 'SQLITE_ERROR', detail: ADMIN_CHECK_FAILED });
  });

  it('should not tag a failure of the carry-over itself', async () => {
    const failure = await runCarryOverWorker(job({ scratch: path.join(dir, 'missing.db') })).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(SnapshotError);
    expect((failure as SnapshotError).detail).toBeUndefined();
  });
});
