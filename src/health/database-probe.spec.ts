import Database from 'better-sqlite3';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Clock } from '../common/clock';
import type { AppConfig } from '../config/app-config';
import { DatabaseProbe, DEFAULT_PROBE_RETRY_MS, runProbeWorker } from './database-probe';
import { probe } from './database-probe.worker';

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
    return runProbeWorker({ dbPath, busyTimeoutMs: 5000 });
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
describe("probe (the worker's check)", () => {
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
    const reply = probe({ dbPath, busyTimeoutMs: 100, nativeBinding: path.join(dir, 'gone', 'better_sqlite3.node') });
    expect(reply).toMatchObject({ ok: false, outcome: 'not_run', errorCode: 'MODULE_NOT_FOUND' });
  });

  it('says the check did not run when the database is locked', () => {
    const reply = probe({ dbPath, busyTimeoutMs: 1 }, () => {
      throw new Database.SqliteError('database is locked', 'SQLITE_BUSY');
    });
    expect(reply).toMatchObject({ ok: false, outcome: 'not_run', errorCode: 'SQLITE_BUSY' });
  });

  it('gives a verdict when SQLite finds the file damaged', () => {
    const reply = probe({ dbPath, busyTimeoutMs: 1 }, () => {
      throw new Database.SqliteError('database disk image is malformed', 'SQLITE_CORRUPT');
    });
    expect(reply).toMatchObject({ ok: false, outcome: 'checked', quickCheck: 'database disk image is malformed' });
  });
});

describe(DatabaseProbe.name, () => {
  let dir: string;
  let worker: string;
  let started: string;
  let nowMs: number;
  let dbProbe: DatabaseProbe;

  /** A worker script that counts its starts in a file, then does what `body` says. */
  function workerScript(body: string): void {
    writeFileSync(
      worker,
      `require('node:fs').appendFileSync(${JSON.stringify(started)}, 'x');\n` +
        `const { parentPort } = require('node:worker_threads');\n${body}\n`,
    );
  }
  const starts = () => {
    try {
      return readFileSync(started, 'utf8').length;
    } catch {
      return 0;
    }
  };

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'mc-probe-'));
    worker = path.join(dir, 'worker.js');
    started = path.join(dir, 'started');
    nowMs = Date.UTC(2026, 5, 15, 12, 0, 0);
    const clock = { nowMs: () => nowMs, nowSeconds: () => Math.floor(nowMs / 1000) } as Clock;
    const config = { dbPath: path.join(dir, 'mission-control.db') } as AppConfig;
    dbProbe = new DatabaseProbe(config, clock, {
      databaseProbe: { firstQuickCheckMs: 0, quickCheckIntervalMs: 600_000, workerFile: worker },
    });
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports unknown (not an error) when its worker cannot start, and retries within a minute', async () => {
    // As when the native module is replaced under the running service: the worker dies while loading.
    workerScript("throw new Error('Module did not self-register: better_sqlite3.node');");
    await dbProbe.tick();
    expect(starts()).toBe(1);
    expect(dbProbe.state).toMatchObject({ status: 'unknown', notRunReason: 'Error', message: null });

    nowMs += DEFAULT_PROBE_RETRY_MS - 1000;
    await dbProbe.tick();
    expect(starts()).toBe(1);
    expect(DEFAULT_PROBE_RETRY_MS).toBeLessThan(60_000);
    nowMs += 1000;
    await dbProbe.tick();
    expect(starts()).toBe(2);
    expect(dbProbe.state.status).toBe('unknown');

    // Once the check runs again, its verdict is the state.
    workerScript("parentPort.postMessage({ ok: true, outcome: 'checked', quickCheck: 'ok', ms: 1 });");
    nowMs += DEFAULT_PROBE_RETRY_MS;
    await dbProbe.tick();
    expect(starts()).toBe(3);
    expect(dbProbe.state).toMatchObject({ status: 'ok', notRunReason: null, quickCheck: 'ok' });
    // ...and the next check is back on the normal schedule, not the retry one.
    nowMs += DEFAULT_PROBE_RETRY_MS;
    await dbProbe.tick();
    expect(starts()).toBe(3);
  });

  it('keeps a damaged verdict while a later try cannot run', async () => {
    workerScript("parentPort.postMessage({ ok: false, outcome: 'checked', quickCheck: 'row 3 missing', ms: 1 });");
    await dbProbe.tick();
    expect(dbProbe.state.status).toBe('error');
    workerScript("throw new Error('cannot load');");
    nowMs += 600_000;
    await dbProbe.tick();
    expect(dbProbe.state).toMatchObject({ status: 'error', message: expect.stringMatching(/row 3 missing/) });
  });
});
