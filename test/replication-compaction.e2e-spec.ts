import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OffsiteBucket } from '../src/offsite/offsite-bucket';
import { Compactor } from '../src/replication/compactor';
import { rebuildAt } from '../src/replication/replica-rebuild';
import { ReplicaStore } from '../src/replication/replica-store';
import { Shipper } from '../src/replication/shipper';
import { runSnapshotWorker } from '../src/sqlite/snapshot';
import { openNotesDatabase, replicaStoreAt } from './helpers/replica-fixtures';
import {
  type AgeKeys,
  hasAgeCli,
  makeAgeKeys,
  type S3Server,
  startS3,
  useTestCredentials,
} from './helpers/s3-fixtures';

const MARKER = 'OKAPI-MARKER-41d0e2-never-in-the-bucket';
/** Small groups, so a few rounds give several compacted ranges. */
const GROUP = 4;

/** Every row of `notes`, in order: the logical state a rebuild must reproduce. */
function contentOf(db: Database.Database): string {
  return JSON.stringify(db.prepare('SELECT id, body FROM notes ORDER BY id').all());
}

function contentOfFile(file: string): string {
  const db = new Database(file, { readonly: true });
  try {
    return contentOf(db);
  } finally {
    db.close();
  }
}

function sha256Of(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

describe('Replication compaction (real SQLite, real s3rver, age)', () => {
  let dir: string;
  let s3: S3Server;
  let keys: AgeKeys;
  let dbFile: string;
  let app: Database.Database;
  let now: number;
  let shipper: Shipper;
  let store: ReplicaStore;
  let bucket: OffsiteBucket;
  let compactor: Compactor;
  let generation: string;

  beforeAll(() => useTestCredentials());

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mc-compact-'));
    s3 = await startS3();
    keys = await makeAgeKeys(dir);
    dbFile = path.join(dir, 'live.db');
    app = openNotesDatabase(dbFile);
    now = Date.UTC(2026, 11, 3, 12, 0, 0, 0);
    ({ bucket, store } = replicaStoreAt(s3.endpoint, keys));
    shipper = new Shipper({
      dbPath: dbFile,
      spoolDir: path.join(dir, 'replication'),
      store,
      now: () => now,
      snapshot: async (dest) => {
        await runSnapshotWorker(dbFile, dest, { hash: false });
      },
      onGeneration: (id) => {
        generation = id;
      },
      log: () => undefined,
      // A checkpoint every round: the WAL restarts, so ranges span several WAL cycles.
      checkpointBytes: 1,
      checkpointEveryMs: 0,
    });
    compactor = new Compactor(store, () => undefined, GROUP);
    shipper.start();
    await shipper.settle();
    now += 10;
    await shipper.round();
  });

  afterEach(async () => {
    await compactor.stop();
    shipper.stop();
    app.close();
    bucket.destroy();
    await s3.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** One round after `change`, then compaction as the service runs it; returns the moment and the state then. */
  async function step(change: () => void): Promise<{ at: number; content: string }> {
    change();
    now += 1000;
    await shipper.round();
    compactor.poke(shipper.uploader.lastStoredSegment);
    await compactor.idle();
    return { at: now, content: contentOf(app) };
  }

  /** Inserts, updates, deletes, a VACUUM that shrinks the file, then growth again: every kind of page change. */
  async function varied(): Promise<{ at: number; content: string }[]> {
    const moments: { at: number; content: string }[] = [];
    const insert = app.prepare('INSERT INTO notes (body) VALUES (?)');
    for (let round = 0; round < 14; round++) {
      moments.push(
        await step(() => {
          if (round === 7) {
            app.exec('DELETE FROM notes WHERE id % 5 != 0');
            app.exec('VACUUM');
            return;
          }
          app
            .transaction(() => {
              for (let i = 0; i < 40; i++) {
                insert.run(
                  `${round === 2 && i === 0 ? MARKER : `r${round}-${i}`} ${'p'.repeat(200 + ((round * 37 + i) % 300))}`,
                );
              }
              app.prepare("UPDATE notes SET body = body || '+' WHERE id % 7 = ?").run(round % 7);
              app.prepare('DELETE FROM notes WHERE id % 11 = ?').run(round % 11);
            })
            .immediate();
        }),
      );
    }
    return moments;
  }

  it('should store a range per group and rebuild every moment exactly as the segments alone do', async () => {
    const moments = await varied();
    const listing = (await store.listGenerations()).find((l) => l.generation === generation);
    expect(listing?.ranges.length).toBeGreaterThanOrEqual(3);
    expect(listing?.ranges[0]).toEqual({ first: 0, last: GROUP - 1 });
    const scratch = path.join(dir, 'scratch');
    let usedRanges = 0;
    const all = [...moments, { at: 'latest' as const, content: moments[moments.length - 1].content }];
    for (const [i, moment] of all.entries()) {
      const at = moment.at === 'latest' ? 'latest' : new Date(moment.at);
      const fast = await rebuildAt(store, at, { scratchDir: scratch });
      expect(contentOfFile(fast.file)).toBe(moment.content);
      usedRanges += fast.rangesApplied;
      if (i % 3 === 2 || moment.at === 'latest') {
        const slow = await rebuildAt(store, at, { scratchDir: scratch, ranges: false });
        expect(slow.rangesApplied).toBe(0);
        // The same pages, byte for byte, whichever way they came.
        expect(sha256Of(fast.file)).toBe(sha256Of(slow.file));
        expect(fast.restoredTo).toEqual(slow.restoredTo);
        expect(fast.commitsApplied).toBe(slow.commitsApplied);
        fs.rmSync(slow.file);
      }
      fs.rmSync(fast.file);
    }
    expect(usedRanges).toBeGreaterThan(moments.length);
  });

  it('should fall back to the segments when a compacted range is damaged', async () => {
    const moments = await varied();
    const object = s3.objectPath(
      `replica/${generation}/pages/0000000000-${String(GROUP - 1).padStart(10, '0')}.pages.gz.age`,
    );
    const bytes = fs.readFileSync(object);
    bytes[bytes.length - 30] ^= 0xff;
    fs.writeFileSync(object, bytes);
    const rebuilt = await rebuildAt(store, 'latest', { scratchDir: path.join(dir, 'scratch') });
    expect(rebuilt.rangesSkipped).toBe(1);
    expect(rebuilt.rangesApplied).toBeGreaterThan(0);
    expect(contentOfFile(rebuilt.file)).toBe(moments[moments.length - 1].content);
  });

  it('should resume after the last stored range when restarted, storing nothing twice', async () => {
    await varied();
    const before = (await store.listGenerations()).find((l) => l.generation === generation)?.ranges ?? [];
    const again = new Compactor(store, () => undefined, GROUP);
    again.poke(shipper.uploader.lastStoredSegment);
    await again.idle();
    expect(again.rangesStored).toBe(0);
    expect(again.lastError).toBeNull();
    for (let i = 0; i < GROUP; i++) {
      app.prepare('INSERT INTO notes (body) VALUES (?)').run(`more-${i}`);
      now += 1000;
      await shipper.round();
    }
    again.poke(shipper.uploader.lastStoredSegment);
    await again.idle();
    const after = (await store.listGenerations()).find((l) => l.generation === generation)?.ranges ?? [];
    expect(again.rangesStored).toBe(1);
    expect(after).toEqual([...before, { first: before.length * GROUP, last: (before.length + 1) * GROUP - 1 }]);
    const rebuilt = await rebuildAt(store, 'latest', { scratchDir: path.join(dir, 'scratch') });
    expect(contentOfFile(rebuilt.file)).toBe(contentOf(app));
  });

  it('should store nothing readable: no range holds the marker, and age -d | gunzip gives a page set', async () => {
    await varied();
    const ranges = fs
      .readdirSync(s3.dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith('.pages.gz.age._S3rver_object'));
    expect(ranges.length).toBeGreaterThanOrEqual(3);
    for (const entry of ranges) {
      expect(fs.readFileSync(path.join(entry.parentPath, entry.name)).includes(Buffer.from(MARKER))).toBe(false);
    }
    if (hasAgeCli()) {
      const object = path.join(ranges[0].parentPath, ranges[0].name);
      const plain = execFileSync('sh', ['-c', `age -d -i "${keys.identityFile}" "${object}" | gunzip`]);
      expect(plain.subarray(0, 8).toString('latin1')).toBe('MCPAGES1');
    }
  });
});
