import Database from 'better-sqlite3';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runSnapshotWorker } from '../src/sqlite/snapshot';
import { OffsiteBucket } from '../src/offsite/offsite-bucket';
import { rebuildAt } from '../src/replication/replica-rebuild';
import { ReplicaStore } from '../src/replication/replica-store';
import { Shipper } from '../src/replication/shipper';
import { type AgeKeys, makeAgeKeys, type S3Server, startS3, useTestCredentials } from './helpers/s3-fixtures';
import { openNotesDatabase, replicaStoreAt } from './helpers/replica-fixtures';

/**
 * The WAL bound: with checkpoints otherwise off (so only the bound acts), a writer in another process commits in
 * bursts while the shipper's rounds run at the same time. Past the bound the shipper truncates the WAL, so its
 * file never holds more than the bound plus what was committed since (at most two bursts here), and the replica
 * still restores every commit.
 */

const WAL_LIMIT = 256 * 1024;
const BURST = 40;
const BURSTS = 40;
const ROW_BYTES = 3000;

/** Each row its own transaction, as the app's requests are; `burst` commits that many and answers with the count. */
const WRITER = `
  const Database = require(${JSON.stringify(require.resolve('better-sqlite3'))});
  const db = new Database(process.env.MC_DB, { fileMustExist: true });
  db.pragma('busy_timeout = 10000');
  db.pragma('wal_autocheckpoint = 0');
  const insert = db.prepare('INSERT INTO notes (body) VALUES (?)');
  let count = 0;
  process.on('message', (m) => {
    if (m.type === 'stop') { db.close(); process.exit(0); }
    for (let i = 0; i < m.n; i++) { count++; insert.run('row-' + count + '-' + 'x'.repeat(${ROW_BYTES})); }
    process.send({ type: 'burst-done', count });
  });
  process.send({ type: 'ready' });`;

describe('Replication keeps the WAL bounded under a steady writer (e2e, writer process, s3rver)', () => {
  let dir: string;
  let s3: S3Server;
  let keys: AgeKeys;
  let dbFile: string;
  let app: Database.Database;
  let bucket: OffsiteBucket;
  let store: ReplicaStore;
  let shipper: Shipper;
  let writer: ChildProcess;
  let now: number;
  const reasons: string[] = [];

  beforeAll(() => useTestCredentials());

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mc-repl-bound-'));
    s3 = await startS3();
    keys = await makeAgeKeys(dir);
    dbFile = path.join(dir, 'live.db');
    // The service's own connection stays open, as in the service (the WAL is not deleted between writes).
    app = openNotesDatabase(dbFile);
    ({ bucket, store } = replicaStoreAt(s3.endpoint, keys));
    now = Date.UTC(2026, 11, 3, 12, 0, 0, 0);
    reasons.length = 0;
    shipper = new Shipper({
      dbPath: dbFile,
      spoolDir: path.join(dir, 'replication'),
      store,
      now: () => now,
      snapshot: async (dest) => {
        await runSnapshotWorker(dbFile, dest, { hash: false });
      },
      onGeneration: (_generation, reason) => {
        reasons.push(reason);
      },
      log: () => undefined,
      checkpointBytes: Number.MAX_SAFE_INTEGER,
      checkpointEveryMs: Number.MAX_SAFE_INTEGER,
      walLimitBytes: WAL_LIMIT,
    });
    writer = spawn(process.execPath, ['-e', WRITER], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, MC_DB: dbFile },
    });
    await next('ready');
  });

  afterEach(async () => {
    shipper.stop();
    writer.kill('SIGKILL');
    app.close();
    bucket.destroy();
    await s3.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function next<T extends { type: string }>(type: string): Promise<T> {
    return new Promise((resolve) => {
      const listener = (message: T): void => {
        if (message.type === type) {
          writer.off('message', listener);
          resolve(message);
        }
      };
      writer.on('message', listener);
    });
  }

  function walSize(): number {
    try {
      return fs.statSync(`${dbFile}-wal`).size;
    } catch {
      return 0;
    }
  }

  it('should truncate a WAL past its bound while a writer keeps committing, and restore every commit', async () => {
    shipper.start();
    await shipper.settle();
    let committed = 0;
    const sizes: number[] = [];
    for (let i = 0; i < BURSTS; i++) {
      // The burst and the round run at the same time: the round reads, checkpoints and truncates under the
      // writer's feet, and spools what the writer committed meanwhile under its own write lock.
      const burst = next<{ type: string; count: number }>('burst-done');
      writer.send({ type: 'burst', n: BURST });
      now += 1000;
      await shipper.round();
      committed = (await burst).count;
      sizes.push(walSize());
    }
    writer.send({ type: 'stop' });
    await shipper.settle();
    now += 1000;
    await shipper.round();

    // Without the bound the WAL would hold every burst (about 6.6 MiB here); with it, never more than the bound plus
    // two bursts (the one before the round that saw the bound and the one during it), whatever the timing.
    const frame = 24 + 4096;
    const burstBytes = BURST * 3 * frame;
    expect(Math.max(...sizes)).toBeLessThanOrEqual(WAL_LIMIT + 2 * burstBytes + 32);
    expect(BURSTS * BURST * frame).toBeGreaterThan(3 * (WAL_LIMIT + 2 * burstBytes));
    // The WAL was truncated again and again.
    expect(sizes.filter((size) => size < WAL_LIMIT).length).toBeGreaterThan(BURSTS / 4);

    const latest = await rebuildAt(store, 'latest', { scratchDir: path.join(dir, 'scratch') });
    const db = new Database(latest.file, { readonly: true });
    const rows = db.prepare('SELECT count(*) AS n, max(id) AS last FROM notes').get() as { n: number; last: number };
    db.close();
    expect(rows).toEqual({ n: committed, last: committed });
    // Continuity held, or (a writer slipping in right after a TRUNCATE) a new generation with its reason.
    expect(reasons[0]).toBe('start');
    for (const reason of reasons.slice(1)) {
      expect(['wal_reset', 'wal_truncated']).toContain(reason);
    }
  });
});
