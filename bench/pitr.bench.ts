/**
 * `npm run bench -- --pitr [--size <MiB>] [--seconds <n>]`: point-in-time restore at scale. A database filled to
 * --size MiB (incompressible filler, as the backup bench builds), then --seconds of 100 commits/s on an injected
 * clock (one shipper round per simulated second, as the service ships them), then the latest state and a moment
 * in the middle rebuilt from the bucket (s3rver in a child process on loopback): the snapshot's download, age and
 * gunzip, every segment or compacted range needed, SQLite's recovery, and the check. Rows are counted after each.
 * The target is 1 GiB and one hour (the defaults): ≤ 30 s end to end.
 */
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generateIdentityFile } from '../src/offsite/age-crypto';
import type { ReplicaStore } from '../src/replication/replica-store';
import type { Shipper } from '../src/replication/shipper';
import { Compactor } from '../src/replication/compactor';
import { rebuildAt, type RebuildResult } from '../src/replication/replica-rebuild';
import { runInspectWorker } from '../src/sqlite/snapshot';
import { fillDatabase } from './bench-db';
import { fixed, markdownTable, progress, type BenchOptions } from './bench-util';
import { benchReplicaStore, benchShipper, startS3rver } from './bench-s3rver';

const PREFIX = 'mission-control/';
const COMMITS_PER_SECOND = 100;
const TARGET_SECONDS = 30;

export interface ScaledRebuild {
  ranges: number;
  dbMiB: number;
  seconds: number;
  commits: number;
  segments: number;
  walMiB: number;
  buildMs: number;
  rebuilds: {
    label: string;
    ms: number;
    admissionMs: number;
    restored: number;
    expected: number;
    result: RebuildResult;
  }[];
}

/**
 * Builds the history and rebuilds from it. `root` is an empty working folder; s3rver must already serve
 * BENCH_BUCKET on `port`.
 */
export async function runScaledRebuild(
  root: string,
  port: number,
  recipient: string,
  identityFile: string,
  scale: { dbMiB: number; seconds: number },
): Promise<ScaledRebuild> {
  const dir = path.join(root, 'scaled');
  fs.mkdirSync(dir, { recursive: true });
  const dbFile = path.join(dir, 'live.db');
  new Database(dbFile).close();
  const buildStarted = Date.now();
  progress(`pitr: filling a ${scale.dbMiB} MiB database`);
  fillDatabase(dbFile, scale.dbMiB * 1048576);
  const db = new Database(dbFile);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE events (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, body TEXT NOT NULL)');
  const { bucket, store } = benchReplicaStore(
    `http://127.0.0.1:${port}`,
    `${PREFIX}scaled/`,
    recipient,
    identityFile,
    120_000,
  );
  const history = await shipHistory(db, dbFile, dir, store, scale.seconds, Date.now());
  const { compactor } = history;
  const now = history.end;
  try {
    const { commits, middle } = history;
    const buildMs = Date.now() - buildStarted;
    const rebuilds: ScaledRebuild['rebuilds'] = [];
    for (const [label, at, expected] of [
      ['latest', 'latest', commits],
      ['the middle', new Date(middle.at), middle.commits],
    ] as const) {
      progress(`pitr: rebuilding ${label} from the bucket`);
      const started = Date.now();
      // As the service rebuilds: the closing quick_check is left to admission, which is timed next.
      const result = await rebuildAt(store, at, { scratchDir: dir, notAfterMs: now + 1000, admissionChecks: true });
      const ms = Date.now() - started;
      const admitted = Date.now();
      const check = await runInspectWorker(result.file, { integrity: 'full', hash: true, makeStandalone: true });
      const admissionMs = Date.now() - admitted;
      if (check.integrity !== 'ok') {
        throw new Error(`The rebuilt ${label} fails admission: ${String(check.integrity)}`);
      }
      const reader = new Database(result.file, { readonly: true });
      const restored = (reader.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n;
      reader.close();
      const dbMiB = fs.statSync(result.file).size / 1048576;
      fs.rmSync(result.file, { force: true });
      rebuilds.push({
        label,
        ms,
        admissionMs,
        restored,
        expected,
        result: { ...result, file: `${fixed(dbMiB, 1)} MiB` },
      });
    }
    return {
      ranges: compactor.rangesStored,
      dbMiB: scale.dbMiB,
      seconds: scale.seconds,
      commits,
      segments: history.segments,
      walMiB: history.walBytes / 1048576,
      buildMs,
      rebuilds,
    };
  } finally {
    await compactor.stop();
    history.shipper.stop();
    db.close();
    bucket.destroy();
  }
}

export interface ShippedHistory {
  shipper: Shipper;
  compactor: Compactor;
  commits: number;
  /** A moment half-way through (between two seconds' commits) and how many commits were made before it. */
  middle: { at: number; commits: number };
  /** The injected clock after the last second (ms). */
  end: number;
  segments: number;
  walBytes: number;
}

/**
 * `seconds` of 100 commits/s into `events` of the open `db` (WAL mode, no autocheckpoint), one shipper round per
 * simulated second on a clock starting at `startMs`, compaction beside it as the service runs it. The shipper and
 * the compactor are left running (their spool state is the service's own, under `dir`/replication): stop them.
 */
export async function shipHistory(
  db: Database.Database,
  dbFile: string,
  dir: string,
  store: ReplicaStore,
  seconds: number,
  startMs: number,
): Promise<ShippedHistory> {
  let now = startMs;
  let walBytes = 0;
  const shipper = benchShipper(dbFile, dir, store, () => now);
  const compactor = new Compactor(store, () => undefined);
  shipper.start();
  await shipper.settle();
  await shipper.round();
  progress(`pitr: ${seconds} s of ${COMMITS_PER_SECOND} commits/s on an injected clock`);
  const insert = db.prepare('INSERT INTO events (at, body) VALUES (?, ?)');
  let commits = 0;
  const before = shipper.segmentsSpooled;
  const middle = { at: 0, commits: 0 };
  for (let second = 0; second < seconds; second++) {
    for (let i = 0; i < COMMITS_PER_SECOND; i++) {
      insert.run(now, `event ${commits++} ${'x'.repeat(100)}`);
    }
    walBytes += COMMITS_PER_SECOND * (4096 + 24);
    await shipper.round();
    // As the service does after each round: compaction runs beside the shipper, one at a time.
    compactor.poke(shipper.uploader.lastStoredSegment);
    if (second === Math.floor(seconds / 2)) {
      middle.at = now + 500;
      middle.commits = commits;
    }
    now += 1000;
    if (second % 600 === 599) {
      progress(`pitr: ${second + 1} s built`);
    }
  }
  await shipper.round();
  compactor.poke(shipper.uploader.lastStoredSegment);
  await compactor.idle();
  return { shipper, compactor, commits, middle, end: now, segments: shipper.segmentsSpooled - before, walBytes };
}

export function scaledRebuildTable(scaled: ScaledRebuild): string {
  return markdownTable(
    [
      'moment',
      'database',
      'changes',
      'segments / compacted ranges',
      'WAL frames (one page a commit)',
      'rebuild',
      'snapshot / segments / check / apply / finish s',
      'admission (as the service: integrity_check, sha256)',
      'rows checked',
    ],
    scaled.rebuilds.map((r) => [
      r.label,
      `${fixed(scaled.dbMiB, 0)} MiB → ${r.result.file}`,
      `${scaled.commits} commits (${scaled.seconds} s at ${COMMITS_PER_SECOND}/s)`,
      `${scaled.segments} / ${scaled.ranges} (used ${r.result.rangesApplied}, then ${r.result.segmentsApplied} segments)`,
      `${fixed(scaled.walMiB, 1)} MiB`,
      `${fixed(r.ms / 1000, 2)} s`,
      Object.values(r.result.timings)
        .map((ms) => fixed(ms / 1000, 2))
        .join(' / '),
      `${fixed(r.admissionMs / 1000, 2)} s`,
      `${r.restored} of ${r.expected}`,
    ]),
  );
}

export async function runPitrBench(options: BenchOptions): Promise<number> {
  const root = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'mc-pitr-bench-'));
  fs.mkdirSync(root, { recursive: true });
  const s3Dir = path.join(root, 's3');
  fs.mkdirSync(s3Dir, { recursive: true });
  const { port, child } = await startS3rver(s3Dir);
  const { text, recipient } = await generateIdentityFile(new Date());
  const identityFile = path.join(root, 'identity.txt');
  fs.writeFileSync(identityFile, text, { mode: 0o600 });
  const load0 = os.loadavg();
  try {
    const scaled = await runScaledRebuild(root, port, recipient, identityFile, {
      dbMiB: options.sizeMiB,
      seconds: options.seconds,
    });
    const load1 = os.loadavg();
    process.stdout.write(
      `\nPoint-in-time rebuild, ${os.cpus().length} CPUs, load before ${load0.map((l) => fixed(l, 1)).join(' ')}, ` +
        `after ${load1.map((l) => fixed(l, 1)).join(' ')}; building the history took ${fixed(scaled.buildMs / 1000, 0)} s. ` +
        `Target for 1 GiB and one hour at ${COMMITS_PER_SECOND}/s: ≤ ${TARGET_SECONDS} s\n\n` +
        scaledRebuildTable(scaled) +
        '\n',
    );
    return scaled.rebuilds.every((r) => r.restored === r.expected) ? 0 : 1;
  } finally {
    child.kill();
    if (!options.keep) {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
}
