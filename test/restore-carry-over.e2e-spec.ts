import Database from 'better-sqlite3';
import request from 'supertest';
import { BackupFiles } from '../src/backups/backup-files';
import { FaultPoints } from '../src/config/fault-points';
import { SQLITE_HANDLE, type SqliteHandle } from '../src/database/sqlite-handle';
import { appPerTest } from './helpers/held-call';
import { makeBackup } from './helpers/recovery-fixtures';
import { API_KEY } from './helpers/test-app';

type Row = Record<string, unknown>;

/** Every kept table, by key, each value next to its SQLite storage class (a BLOB must stay a BLOB). */
const KEPT = { backup_manifests: 'name', scheduler_tasks: 'id', offsite_uploads: 'name', audit_log: 'id' } as const;

function readKept(db: Database.Database): Record<keyof typeof KEPT, Row[]> {
  const tables = {} as Record<keyof typeof KEPT, Row[]>;
  for (const [table, key] of Object.entries(KEPT) as Array<[keyof typeof KEPT, string]>) {
    const columns = (db.pragma(`table_info("${table}")`) as Array<{ name: string }>).map((c) => c.name);
    const select = columns.map((c) => `"${c}", typeof("${c}") AS "${c}:type"`).join(', ');
    tables[table] = db.prepare(`SELECT ${select} FROM "${table}" ORDER BY "${key}"`).all() as Row[];
  }
  return tables;
}

/** Runs `POST /api/backup/restore` of `name` and waits for the answer. */
function restore(http: Parameters<typeof request>[0], name: string) {
  return request(http).post('/api/backup/restore').set('x-api-key', API_KEY).send({ name });
}

/**
 * Issue #19: what a restore keeps from the live database (the carried tables, the audit log) is read and written
 * into the scratch copy in a worker thread, under the restore worker's write lock. The service's event loop and its
 * connection stay out of it, and the kept rows arrive exactly as they were.
 */
describe('A restore carries the live state over off the event loop (e2e)', () => {
  const app = appPerTest();
  const handle = (): SqliteHandle => app.t.app.get<SqliteHandle>(SQLITE_HANDLE);

  it('should keep every carried row and audit row as it was, a commit made just before the lock included', async () => {
    const made = await makeBackup(app.t);
    // Live state the backup does not have, with values a copy could bend: a BLOB, integers past 2^32, non-ASCII
    // text, NULLs.
    await makeBackup(app.t);
    const db = handle();
    const big = 2 ** 40 + 7;
    db.prepare(
      'INSERT INTO offsite_uploads (name, status, attempts, next_attempt_at_ms, first_failed_at, last_error, ' +
        'enqueued_at, uploaded_at, backup_created_at, object_name, object_sha256, sha256, size, encrypted) ' +
        'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ).run(
      made.name,
      'failed',
      3,
      big,
      1_700_000_000,
      'Zugriff verweigert — 403 ✗',
      1,
      null,
      2,
      null,
      null,
      'ab',
      big,
      1,
    );
    db.prepare(
      "INSERT OR REPLACE INTO scheduler_tasks (id, last_run, last_result_ok, last_result_message, running) VALUES ('carry-test', ?, 0, ?, 0)",
    ).run(big, 'line one\nline two ✓');
    db.prepare(
      'INSERT INTO audit_log (action, actor, actor_id, target_type, target_id, detail, ip_address, user_agent, ' +
        "created_at) VALUES ('carry_test', 'zoë', NULL, 'backup', NULL, ?, NULL, x'00ff10', ?)",
    ).run(JSON.stringify({ note: 'ünïcode ✓', n: big }), big);
    db.prepare(
      "INSERT INTO users (username, password_hash, role, created_at) VALUES ('carol', 'x', 'viewer', 1)",
    ).run();
    db.prepare("INSERT INTO settings (key, value, updated_at) VALUES ('carry_test', 'on', 1)").run();

    // The last commit before the restore worker takes the lock, made through the service's connection (WAL, not
    // checkpointed): the worker's own connection must read it.
    const files = app.t.app.get(BackupFiles);
    const restoreTempInto = files.restoreTempInto.bind(files);
    jest.spyOn(files, 'restoreTempInto').mockImplementation((...args) => {
      db.prepare(
        "INSERT INTO audit_log (action, actor, detail, created_at) VALUES ('committed_before_lock', 'test', '{}', 2)",
      ).run();
      return restoreTempInto(...args);
    });
    // Under the lock, what the service's connection sees: what the carry-over must carry.
    let before: ReturnType<typeof readKept> | undefined;
    jest.spyOn(app.t.app.get(FaultPoints), 'reach').mockImplementation(async (point) => {
      if (point === 'locked') {
        before = readKept(db);
      }
    });

    const response = await restore(app.t.http, made.name).expect(200);
    expect(response.body).toMatchObject({
      settings_changed: ['carry_test'],
      users_changed: true,
      users_added: [],
      users_removed: ['carol'],
    });

    const after = readKept(db);
    expect(before).toBeDefined();
    expect(after.scheduler_tasks).toEqual(before!.scheduler_tasks);
    expect(after.offsite_uploads).toEqual(before!.offsite_uploads);
    // The restored backup's own row is marked verified after the copy; the rest, plus the safety copy's row.
    const unverified = (rows: Row[]) =>
      rows.map((row) =>
        row.name === made.name
          ? { ...row, verified_at: null, 'verified_at:type': null, integrity: null, 'integrity:type': null }
          : row,
      );
    const safety = after.backup_manifests.find((row) => row.name === response.body.safety_backup);
    expect(safety).toMatchObject({ kind: 'safety', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(unverified(after.backup_manifests.filter((row) => row !== safety))).toEqual(
      unverified(before!.backup_manifests),
    );
    expect(after.audit_log.slice(0, before!.audit_log.length)).toEqual(before!.audit_log);
    const added = after.audit_log.slice(before!.audit_log.length);
    expect(added.filter((row) => row.action === 'backup_restore')).toHaveLength(1);
    expect(before!.audit_log.find((row) => row.action === 'committed_before_lock')).toBeDefined();
    expect(after.audit_log.find((row) => row.action === 'carry_test')).toMatchObject({
      user_agent: Buffer.from([0x00, 0xff, 0x10]),
      'user_agent:type': 'blob',
      created_at: big,
      'created_at:type': 'integer',
    });
  });

  it('should keep the event loop and the service connection free while the carry-over runs', async () => {
    const made = await makeBackup(app.t);
    const db = handle();
    const insert = db.prepare(
      "INSERT INTO audit_log (action, actor, detail, created_at) VALUES ('bulk', 'test', '{\"n\":1}', ?)",
    );
    db.transaction(() => {
      for (let i = 0; i < 20_000; i++) {
        insert.run(i);
      }
    }).immediate();

    // The carry-over is held by a write lock on the scratch copy, taken once the restore holds the live lock. The
    // service must answer a request while the carry-over waits: on the main thread it would block the event loop
    // until SQLite's busy timeout gives up.
    const files = app.t.app.get(BackupFiles);
    let scratch: string | undefined;
    const restoreTempInto = files.restoreTempInto.bind(files);
    jest.spyOn(files, 'restoreTempInto').mockImplementation((tmp, ...rest) => {
      scratch = tmp;
      return restoreTempInto(tmp, ...rest);
    });
    let blocker: Database.Database | undefined;
    let copyingReached = false;
    jest.spyOn(app.t.app.get(FaultPoints), 'reach').mockImplementation(async (point) => {
      if (point === 'locked') {
        if (scratch === undefined) {
          throw new Error('The restore locked the live database before it had a scratch copy');
        }
        blocker = new Database(scratch, { fileMustExist: true });
        blocker.exec('BEGIN IMMEDIATE');
      }
      if (point === 'copying') {
        copyingReached = true;
      }
    });
    // Every safety copy is published under the lock, whether begun beside the verify or taken again there.
    const publish = files.publishSnapshot.bind(files);
    let served: Promise<{ status: number; copyingReached: boolean }> | undefined;
    jest.spyOn(files, 'publishSnapshot').mockImplementation(async (...args) => {
      const safety = await publish(...args);
      // The carry-over starts as soon as this resolves.
      served = request(app.t.http)
        .get('/api/health')
        .then((response) => ({ status: response.status, copyingReached }));
      return safety;
    });
    const prepared: string[] = [];
    const prepare = db.prepare.bind(db);
    jest.spyOn(db, 'prepare').mockImplementation((sql: string) => {
      prepared.push(sql);
      return prepare(sql);
    });

    const restoring = restore(app.t.http, made.name).then((response) => response);
    try {
      while (served === undefined) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      // Answered while the carry-over still waited for the scratch copy.
      expect(await served).toEqual({ status: 200, copyingReached: false });
    } finally {
      blocker?.exec('ROLLBACK');
      blocker?.close();
    }
    const response = await restoring;
    expect(response.status).toBe(200);
    expect(copyingReached).toBe(true);
    // Nothing of the carry-over went through the service's connection.
    expect(
      prepared.filter((sql) =>
        /^SELECT \* FROM "?(audit_log|backup_manifests|scheduler_tasks|offsite_uploads)/.test(sql),
      ),
    ).toEqual([]);
    const bulk = db.prepare("SELECT count(*) AS n FROM audit_log WHERE action = 'bulk'").get() as { n: number };
    expect(bulk.n).toBe(20_000);
  });
});
