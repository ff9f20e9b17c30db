import Database from 'better-sqlite3';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runSnapshotWorker } from '../src/sqlite/snapshot';
import { OffsiteBucket } from '../src/offsite/offsite-bucket';
import { rebuildAt } from '../src/replication/replica-rebuild';
import { PointInTimeUnavailableError, readWindow, ReplicaDamagedError } from '../src/replication/replica-window';
import { ReplicaStore } from '../src/replication/replica-store';
import { Shipper } from '../src/replication/shipper';
import { WAL_HEADER_SIZE } from '../src/replication/wal-reader';
import {
  type AgeKeys,
  FaultProxy,
  hasAgeCli,
  makeAgeKeys,
  type S3Server,
  startS3,
  useTestCredentials,
} from './helpers/s3-fixtures';
import { notesIn, openNotesDatabase, replicaStoreAt } from './helpers/replica-fixtures';

const MARKER = 'ZEBRA-MARKER-7f3a9c-never-in-the-bucket';

describe('Replication engine (real SQLite, real s3rver, age)', () => {
  let dir: string;
  let s3: S3Server;
  let proxy: FaultProxy;
  let keys: AgeKeys;
  let dbFile: string;
  let app: Database.Database;
  let now: number;
  let shipper: Shipper;
  let store: ReplicaStore;
  let generations: { generation: string; reason: string }[];
  let bucket: OffsiteBucket;

  beforeAll(() => useTestCredentials());

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mc-repl-'));
    s3 = await startS3();
    proxy = new FaultProxy(s3.endpoint);
    await proxy.start();
    keys = await makeAgeKeys(dir);
    dbFile = path.join(dir, 'live.db');
    app = openNotesDatabase(dbFile);
    now = Date.UTC(2026, 11, 3, 12, 0, 0, 0);
    ({ bucket, store } = replicaStoreAt(proxy.endpoint, keys));
    generations = [];
    shipper = makeShipper();
  });

  afterEach(async () => {
    shipper.stop();
    app.close();
    bucket.destroy();
    await proxy.close();
    await s3.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function makeShipper(): Shipper {
    return new Shipper({
      dbPath: dbFile,
      spoolDir: path.join(dir, 'replication'),
      store,
      now: () => now,
      snapshot: async (dest) => {
        await runSnapshotWorker(dbFile, dest, { hash: false });
      },
      onGeneration: (generation, reason) => {
        generations.push({ generation, reason });
      },
      log: () => undefined,
      checkpointBytes: 1,
      checkpointEveryMs: 0,
    });
  }

  function insert(body: string): void {
    app.prepare('INSERT INTO notes (body) VALUES (?)').run(body);
  }

  async function startStreaming(): Promise<void> {
    shipper.start();
    await shipper.settle();
    now += 10;
    await shipper.round();
  }

  /** Writes one row per step, each followed by a round at a later time; returns the round times. */
  async function writeAndShip(tag: string, count: number): Promise<number[]> {
    const times: number[] = [];
    for (let i = 0; i < count; i++) {
      insert(`${tag}-${i}`);
      now += 1000;
      await shipper.round();
      times.push(now);
    }
    return times;
  }

  it('should rebuild exactly the commits observed at or before a moment, to the millisecond', async () => {
    await startStreaming();
    const times = await writeAndShip('row', 6);
    expect(shipper.status()).toBe('streaming');
    const scratch = path.join(dir, 'scratch');

    const atThird = await rebuildAt(store, new Date(times[2]), { scratchDir: scratch });
    expect(notesIn(atThird.file)).toEqual(['row-0', 'row-1', 'row-2']);
    expect(atThird.restoredTo.getTime()).toBe(times[2]);
    // One millisecond before the fourth commit was observed: still three rows.
    const justBefore = await rebuildAt(store, new Date(times[3] - 1), { scratchDir: scratch });
    expect(notesIn(justBefore.file)).toEqual(['row-0', 'row-1', 'row-2']);
    const latest = await rebuildAt(store, 'latest', { scratchDir: scratch });
    expect(notesIn(latest.file)).toHaveLength(6);
    // A standalone file: rollback journal, no WAL needed.
    const db = new Database(latest.file, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('delete');
    db.close();
    expect(fs.existsSync(`${latest.file}-wal`)).toBe(false);

    const window = await readWindow(store);
    await expect(
      rebuildAt(store, new Date(window.restorable_from!.getTime() - 1), { scratchDir: scratch }),
    ).rejects.toThrow(PointInTimeUnavailableError);
  });

  it('should keep the chain across its own checkpoints (WAL restarts) and ship nothing readable', async () => {
    await startStreaming();
    insert(MARKER);
    now += 1000;
    await shipper.round();
    await writeAndShip('after', 3);
    // Checkpoints ran every round: the WAL restarted several times, still one generation.
    expect(generations).toHaveLength(1);
    const latest = await rebuildAt(store, 'latest', { scratchDir: path.join(dir, 'scratch') });
    expect(notesIn(latest.file)).toEqual([MARKER, 'after-0', 'after-1', 'after-2']);
    const stored = fs
      .readdirSync(s3.dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => fs.readFileSync(path.join(e.parentPath, e.name)));
    expect(stored.length).toBeGreaterThan(4);
    for (const bytes of stored) {
      expect(bytes.includes(Buffer.from(MARKER))).toBe(false);
    }
  });

  (hasAgeCli() ? it : it.skip)('should give a valid WAL segment with age -d | gunzip by hand', async () => {
    await startStreaming();
    await writeAndShip('hand', 1);
    const segment = s3.objectPath(`replica/${generations[0].generation}/wal/0000000000.wal.gz.age`);
    const plain = execFileSync('sh', ['-c', `age -d -i "${keys.identityFile}" "${segment}" | gunzip`]);
    const manifest = JSON.parse(
      fs.readFileSync(s3.objectPath(`replica/${generations[0].generation}/wal/0000000000.json`), 'utf8'),
    ) as { sha256: string; start_offset: number };
    expect(manifest.start_offset).toBe(WAL_HEADER_SIZE);
    expect(plain.readUInt32BE(0) & 0xfffffffe).toBe(0x377f0682);
    expect(createHash('sha256').update(plain).digest('hex')).toBe(manifest.sha256);
  });

  (hasAgeCli() && spawnSync('sqlite3', ['-version']).status === 0 ? it : it.skip)(
    'should rebuild the latest state by hand with scripts/replica-rebuild.sh (age, gunzip, sqlite3 only)',
    async () => {
      await startStreaming();
      await writeAndShip('manual', 3);
      const generation = generations[0].generation;
      // A local copy of replica/<generation>/, as `aws s3 cp --recursive` would make it.
      const copy = path.join(dir, 'copy');
      const source = path.dirname(s3.objectPath(`replica/${generation}/snapshot.json`));
      for (const entry of fs.readdirSync(source, { recursive: true, withFileTypes: true })) {
        if (entry.isFile() && entry.name.endsWith('._S3rver_object')) {
          const relative = path.relative(source, path.join(entry.parentPath, entry.name));
          const target = path.join(copy, relative.slice(0, -'._S3rver_object'.length));
          fs.mkdirSync(path.dirname(target), { recursive: true });
          fs.copyFileSync(path.join(entry.parentPath, entry.name), target);
        }
      }
      const out = path.join(dir, 'by-hand.db');
      const script = path.join(__dirname, '..', 'scripts', 'replica-rebuild.sh');
      const run = spawnSync('sh', [script, keys.identityFile, copy, out], { encoding: 'utf8' });
      expect(run.stderr).toBe('');
      expect(run.stdout.trim()).toBe('ok');
      expect(notesIn(out)).toEqual(['manual-0', 'manual-1', 'manual-2']);
    },
  );

  it('should lose nothing while the bucket is away and ship in order when it returns', async () => {
    await startStreaming();
    proxy.mode = 'http503';
    const times = await writeAndShip('outage', 5);
    expect(shipper.status()).toBe('failed');
    expect(shipper.spool.pendingBytes()).toBeGreaterThan(0);
    expect(shipper.lagMs()).toBeGreaterThan(0);
    proxy.mode = 'pass';
    now += 1000;
    await shipper.round();
    expect(shipper.spool.pendingBytes()).toBe(0);
    expect(shipper.status()).toBe('streaming');
    const atFourth = await rebuildAt(store, new Date(times[3]), { scratchDir: path.join(dir, 'scratch') });
    expect(notesIn(atFourth.file)).toEqual(['outage-0', 'outage-1', 'outage-2', 'outage-3']);
  });

  it('should start a new generation, with the reason, after a foreign wal_checkpoint(TRUNCATE)', async () => {
    await startStreaming();
    // Checkpoints off for this test: the foreign process must find frames we have not closed.
    (shipper as unknown as { deps: { checkpointBytes: number } }).deps.checkpointBytes = Number.MAX_SAFE_INTEGER;
    await writeAndShip('before', 2);
    insert('unshipped');
    const foreign = spawnSync(process.execPath, [
      '-e',
      `const D=require('better-sqlite3');const d=new D(${JSON.stringify(dbFile)});` +
        `console.log(JSON.stringify(d.pragma('wal_checkpoint(TRUNCATE)')));d.close();`,
    ]);
    expect(foreign.status).toBe(0);
    insert('after-truncate');
    now += 1000;
    await shipper.round();
    await shipper.settle();
    now += 1000;
    await shipper.round();
    // The WAL was truncated, then a new header written by the next commit: either way a reset we did not make.
    expect(generations.map((g) => g.reason)).toEqual(['start', expect.stringMatching(/^wal_(reset|truncated)$/)]);
    const latest = await rebuildAt(store, 'latest', { scratchDir: path.join(dir, 'scratch') });
    expect(notesIn(latest.file)).toEqual(['before-0', 'before-1', 'unshipped', 'after-truncate']);
    const window = await readWindow(store);
    expect(window.generations).toHaveLength(2);
    expect(window.gaps).toHaveLength(1);
    await expect(
      rebuildAt(store, new Date(window.gaps[0].from.getTime() + 1), { scratchDir: path.join(dir, 'scratch') }),
    ).rejects.toThrow(/cannot be restored: restorable from/);
  });

  it('should resume its generation after a kill that left the WAL as it was, frames written meanwhile included', async () => {
    await startStreaming();
    await writeAndShip('before', 2);
    // A kill: no last round; the live database and its WAL stay as they are; another writer commits meanwhile
    // (here into the next WAL cycle, since the shipper had checkpointed and closed the last one).
    shipper.stop();
    insert('while-down');
    shipper = makeShipper();
    shipper.start();
    await shipper.settle();
    await writeAndShip('after', 1);
    expect(generations.map((g) => g.reason)).toEqual(['start']);
    const latest = await rebuildAt(store, 'latest', { scratchDir: path.join(dir, 'scratch') });
    expect(notesIn(latest.file)).toEqual(['before-0', 'before-1', 'while-down', 'after-0']);
  });

  it('should start a new generation, audited, when others checkpointed the WAL away while it was stopped', async () => {
    await startStreaming();
    (shipper as unknown as { deps: { checkpointBytes: number } }).deps.checkpointBytes = Number.MAX_SAFE_INTEGER;
    await writeAndShip('before', 1);
    shipper.stop();
    now += 1000;
    insert('foreign');
    app.pragma('wal_checkpoint(TRUNCATE)');
    insert('foreign-2');
    shipper = makeShipper();
    shipper.start();
    await shipper.settle();
    now += 1000;
    await shipper.round();
    expect(generations.map((g) => g.reason)).toEqual(['start', 'restart_lost_wal']);
    const latest = await rebuildAt(store, 'latest', { scratchDir: path.join(dir, 'scratch') });
    expect(notesIn(latest.file)).toEqual(['before-0', 'foreign', 'foreign-2']);
    expect((await readWindow(store)).gaps).toHaveLength(1);
  });

  it('should refuse a moment past a damaged segment, or stop at the last good commit when asked', async () => {
    await startStreaming();
    const times = await writeAndShip('dmg', 4);
    // Segment 0 holds the CREATE TABLE, 1 holds dmg-0 …: damage dmg-2's.
    const damaged = s3.objectPath(`replica/${generations[0].generation}/wal/0000000003.wal.gz.age`);
    const bytes = fs.readFileSync(damaged);
    bytes[bytes.length - 20] ^= 0xff;
    fs.writeFileSync(damaged, bytes);
    const scratch = path.join(dir, 'scratch');
    // Before the damage: fine.
    expect(notesIn((await rebuildAt(store, new Date(times[1]), { scratchDir: scratch })).file)).toEqual([
      'dmg-0',
      'dmg-1',
    ]);
    await expect(rebuildAt(store, new Date(times[3]), { scratchDir: scratch })).rejects.toThrow(ReplicaDamagedError);
    const partial = await rebuildAt(store, new Date(times[3]), { scratchDir: scratch, acceptLastGood: true });
    expect(notesIn(partial.file)).toEqual(['dmg-0', 'dmg-1']);
    expect(partial.stoppedEarly).toEqual({ segment: 3, problem: 'unreadable' });
    expect(partial.restoredTo.getTime()).toBe(times[1]);
  });
});
