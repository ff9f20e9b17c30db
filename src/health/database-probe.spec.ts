import { Logger } from '@nestjs/common';
import Database from 'better-sqlite3';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Clock } from '../common/clock';
import type { OperationLock } from '../common/operation-lock';
import type { AppConfig } from '../config/app-config';
import { runProbeWorker } from '../sqlite/snapshot';
import { DatabaseProbe, DEFAULT_PROBE_RETRY_MS } from './database-probe';
import { checkDatabase, type DatabaseCheck } from '../sqlite/database-check';

/**
 * The health probe's worker on real files: quick_check alone passes the fixture (a table's root page overwritten
 * with an index page, found by the fuzz test), but every read of that table fails, and the probe must say so.
 */
describe('runProbeWorker', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'mc-probe-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const probeCopyOf = (fixture: string) => {
    const dbPath = path.join(dir, 'mission-control.db');
    copyFileSync(fixture, dbPath);
    return runProbeWorker(dbPath);
  };

  it('reports a table that quick_check passes but no read can get through', async () => {
    const reply = await probeCopyOf(path.join(__dirname, '..', '..', 'test', 'fixtures', 'table-root-overwritten.db'));
    expect(reply).toMatchObject({ ok: false, quickCheck: expect.stringMatching(/malformed/) });
  });

  it('passes a sound database', async () => {
    const sound = path.join(dir, 'sound.db');
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(sound);
    db.exec("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('a'), ('b');");
    db.close();
    expect(await probeCopyOf(sound)).toMatchObject({ ok: true, quickCheck: 'ok' });
  });
});

/** "Could not check" is not "damaged": only SQLite finding the file bad is a verdict on the database. */
describe(checkDatabase.name, () => {
  let dir: string;
  let dbPath: string;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'mc-probe-'));
    dbPath = path.join(dir, 'mission-control.db');
    const db = new Database(dbPath);
    db.exec('CREATE TABLE t (v TEXT)');
    db.close();
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('says the check did not run when better-sqlite3 cannot load its native module', () => {
    const reply = checkDatabase({
      file: dbPath,
      busyTimeoutMs: 100,
      nativeBinding: path.join(dir, 'gone', 'better_sqlite3.node'),
    });
    expect(reply).toMatchObject({ ok: false, outcome: 'not_run', errorCode: 'MODULE_NOT_FOUND' });
  });

  it('says the check did not run when the database is locked', () => {
    const reply = checkDatabase({ file: dbPath, busyTimeoutMs: 1 }, () => {
      throw new Database.SqliteError('database is locked', 'SQLITE_BUSY');
    });
    expect(reply).toMatchObject({ ok: false, outcome: 'not_run', errorCode: 'SQLITE_BUSY' });
  });

  it('gives a verdict when SQLite finds the file damaged', () => {
    const reply = checkDatabase({ file: dbPath, busyTimeoutMs: 1 }, () => {
      throw new Database.SqliteError('database disk image is malformed', 'SQLITE_CORRUPT');
    });
    expect(reply).toMatchObject({ ok: false, outcome: 'checked', quickCheck: 'database disk image is malformed' });
  });
});

describe(DatabaseProbe.name, () => {
  let dir: string;
  let nowMs: number;
  let dbProbe: DatabaseProbe;
  let starts: number;
  /** What the next check does: the scheduling is under test here, the check itself above. */
  let nextCheck: () => Promise<DatabaseCheck>;
  const lock: { running: 'backup' | 'restore' | null } = { running: null };
  const checked = (quickCheck: string) => async (): Promise<DatabaseCheck> => ({
    ok: quickCheck === 'ok',
    outcome: 'checked',
    quickCheck,
    ms: 1,
  });

  beforeEach(() => {
    // The probe logs each failure it is fed here on purpose: the test output stays free of expected errors.
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    dir = mkdtempSync(path.join(tmpdir(), 'mc-probe-'));
    starts = 0;
    nowMs = Date.UTC(2026, 5, 15, 12, 0, 0);
    const clock = { nowMs: () => nowMs, nowSeconds: () => Math.floor(nowMs / 1000) } as Clock;
    const config = { dbPath: path.join(dir, 'mission-control.db') } as AppConfig;
    const check = () => {
      starts += 1;
      return nextCheck();
    };
    lock.running = null;
    dbProbe = new DatabaseProbe(
      config,
      clock,
      { databaseProbe: { firstQuickCheckMs: 0, quickCheckIntervalMs: 600_000, check } },
      lock as unknown as OperationLock,
    );
  });

  afterEach(() => {
    jest.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports unknown (not an error) when its worker cannot start, and retries within a minute', async () => {
    // As when the native module is replaced under the running service: the worker dies while loading.
    nextCheck = () => Promise.reject(new Error('Module did not self-register: better_sqlite3.node'));
    await dbProbe.tick();
    expect(starts).toBe(1);
    expect(dbProbe.state).toMatchObject({ status: 'unknown', notRunReason: 'Error', message: null });

    nowMs += DEFAULT_PROBE_RETRY_MS - 1000;
    await dbProbe.tick();
    expect(starts).toBe(1);
    expect(DEFAULT_PROBE_RETRY_MS).toBeLessThan(60_000);
    nowMs += 1000;
    await dbProbe.tick();
    expect(starts).toBe(2);
    expect(dbProbe.state.status).toBe('unknown');

    // Once the check runs again, its verdict is the state.
    nextCheck = checked('ok');
    nowMs += DEFAULT_PROBE_RETRY_MS;
    await dbProbe.tick();
    expect(starts).toBe(3);
    expect(dbProbe.state).toMatchObject({ status: 'ok', notRunReason: null, quickCheck: 'ok' });
    // ...and the next check is back on the normal schedule, not the retry one.
    nowMs += DEFAULT_PROBE_RETRY_MS;
    await dbProbe.tick();
    expect(starts).toBe(3);
  });

  it('keeps a damaged verdict while a later try cannot run', async () => {
    nextCheck = checked('row 3 missing');
    await dbProbe.tick();
    expect(dbProbe.state.status).toBe('error');
    nextCheck = () => Promise.reject(new Error('cannot load'));
    nowMs += 600_000;
    await dbProbe.tick();
    expect(dbProbe.state).toMatchObject({ status: 'error', message: expect.stringMatching(/row 3 missing/) });
  });

  it('leaves its quick_check for the next scan while a backup or restore runs', async () => {
    nextCheck = checked('ok');
    for (const operation of ['backup', 'restore'] as const) {
      lock.running = operation;
      await dbProbe.tick();
      expect(starts).toBe(0);
      expect(dbProbe.state.status).toBe('pending');
    }
    lock.running = null;
    await dbProbe.tick();
    expect(starts).toBe(1);
    expect(dbProbe.state).toMatchObject({ status: 'ok', quickCheck: 'ok' });
  });
});
