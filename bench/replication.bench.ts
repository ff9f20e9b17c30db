/**
 * `npm run bench -- --replication`: staleness of continuous replication (the time from a commit to the moment it is
 * restorable from the bucket), its CPU and RSS cost, and the event loop's delay meanwhile, side by side in one run:
 *  - no replication (the writer alone: the baseline the costs are measured against);
 *  - 100 commits/s with the shipper's work on the calling thread (the design before the worker);
 *  - 100 commits/s with the worker thread (the service's setup);
 *  - 1,000 commits/s with the worker thread;
 *  - then a 30 s bucket outage at 100 commits/s (a fault proxy answering 503): catch-up time after its return, and
 *    a rebuild of the latest state from the bucket, counted row by row.
 * s3rver runs in a child process on loopback, so this process's CPU is the writer's and the shipper's only.
 *
 * A writer on this thread commits one small row at a time (each its own transaction, as the app does); the Shipper
 * runs on the service's RoundScheduler with REPLICATION_SYNC_INTERVAL_MS at its default (1000). A commit counts as
 * restorable once a round that started after it has finished with the spool empty (its segment and manifest are
 * in the bucket).
 */
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { generateIdentityFile } from '../src/offsite/age-crypto';
import { rebuildAt } from '../src/replication/replica-rebuild';
import { Compactor } from '../src/replication/compactor';
import { RoundScheduler } from '../src/replication/round-scheduler';
import { FaultProxy } from '../test/helpers/s3-fixtures';
import { benchReplicaStore, benchShipper, startS3rver } from './bench-s3rver';
import { runScaledRebuild, scaledRebuildTable } from './pitr.bench';
import { fixed, markdownTable, percentile, progress, type BenchOptions } from './bench-util';

const PREFIX = 'mission-control/';
const SYNC_INTERVAL_MS = 1000;
const DURATION_MS = 20_000;
/** The scaled point-in-time rebuild: a database of this size, then this many seconds of 100 commits/s. */
const SCALED = { dbMiB: 128, seconds: 300 };
const OUTAGE = { beforeMs: 5_000, downMs: 30_000, afterMs: 10_000, catchUpSeconds: 5 };
const TARGETS = { p50Seconds: 0.6, p99Seconds: 1.5, p99At1000Seconds: 3, cpuPercent: 5, rssMiB: 64, loopMs: 2 };

interface Scenario {
  name: string;
  commitsPerSecond: number;
  replication: 'off' | 'inline' | 'worker';
}

interface Measured {
  scenario: Scenario;
  commits: number;
  staleness: number[];
  cpuPercent: number;
  rssGrowthMiB: number;
  loopP99Ms: number;
  roundP50Ms: number;
  roundMaxMs: number;
  rounds: number;
  walMaxMiB: number;
}

async function runScenario(
  scenario: Scenario,
  root: string,
  port: number,
  recipient: string,
  identityFile: string,
): Promise<Measured> {
  const dir = path.join(root, scenario.name.replace(/[^a-z0-9]+/gi, '-'));
  fs.mkdirSync(dir, { recursive: true });
  const dbFile = path.join(dir, 'live.db');
  const db = new Database(dbFile);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('wal_autocheckpoint = 0');
  db.pragma('busy_timeout = 5000');
  db.exec('CREATE TABLE events (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, body TEXT NOT NULL)');
  const { bucket, store } = benchReplicaStore(
    `http://127.0.0.1:${port}`,
    `${PREFIX}${path.basename(dir)}/`,
    recipient,
    identityFile,
    10_000,
  );
  const shipper =
    scenario.replication === 'off'
      ? null
      : benchShipper(dbFile, dir, store, () => Date.now(), {
          inlineIo: scenario.replication === 'inline',
        });
  // Compaction as the service runs it beside the shipper, but every 10 segments instead of 60, so that these 20 s
  // rows include it (its cost per segment is the same).
  const compactor = shipper ? new Compactor(store, () => undefined, 10) : null;
  const commits: number[] = [];
  let measuredUpTo = 0;
  const staleness: number[] = [];
  const roundMs: number[] = [];
  let walMax = 0;
  const scheduler = shipper
    ? new RoundScheduler({
        intervalMs: SYNC_INTERVAL_MS,
        now: () => Date.now(),
        walStamp: () => shipper.walStamp(),
        run: async () => {
          const roundStart = Date.now();
          const known = commits.length;
          const shipped = await shipper.round();
          roundMs.push(Date.now() - roundStart);
          compactor?.poke(shipper.uploader.lastStoredSegment);
          if (shipper.spool.entries().length === 0) {
            const done = Date.now();
            for (let i = measuredUpTo; i < known; i++) {
              staleness.push(done - commits[i]);
            }
            measuredUpTo = Math.max(measuredUpTo, known);
          }
          return shipped;
        },
      })
    : null;
  try {
    if (shipper) {
      shipper.start();
      await shipper.settle();
      await shipper.round();
    }
    progress(`${scenario.name}: ${scenario.commitsPerSecond} commits/s for ${DURATION_MS / 1000} s`);
    const insert = db.prepare('INSERT INTO events (at, body) VALUES (?, ?)');
    const perTick = Math.max(1, Math.round(scenario.commitsPerSecond / 100));
    const loop = monitorEventLoopDelay({ resolution: 10 });
    const cpu0 = process.cpuUsage();
    const rss0 = process.memoryUsage.rss();
    let rssMax = rss0;
    const started = Date.now();
    loop.enable();
    scheduler?.start();
    const writer = setInterval(() => {
      // Each commit its own transaction, as the app's requests are.
      for (let i = 0; i < perTick; i++) {
        const at = Date.now();
        insert.run(at, `event ${commits.length} ${'x'.repeat(100)}`);
        commits.push(at);
      }
      rssMax = Math.max(rssMax, process.memoryUsage.rss());
      try {
        walMax = Math.max(walMax, fs.statSync(`${dbFile}-wal`).size);
      } catch {
        // Truncated or not there yet.
      }
    }, 10);
    await new Promise((resolve) => setTimeout(resolve, DURATION_MS));
    clearInterval(writer);
    scheduler?.stop();
    loop.disable();
    const elapsed = Date.now() - started;
    const cpu = process.cpuUsage(cpu0);
    while (scheduler?.current) {
      await scheduler.current;
    }
    await compactor?.stop();
    return {
      scenario,
      commits: commits.length,
      staleness,
      cpuPercent: ((cpu.user + cpu.system) / 1000 / elapsed) * 100,
      rssGrowthMiB: (rssMax - rss0) / 1048576,
      loopP99Ms: loop.percentile(99) / 1e6,
      roundP50Ms: percentile(roundMs, 50),
      roundMaxMs: roundMs.length > 0 ? Math.max(...roundMs) : 0,
      rounds: roundMs.length,
      walMaxMiB: walMax / 1048576,
    };
  } finally {
    scheduler?.stop();
    shipper?.stop();
    db.close();
    bucket.destroy();
  }
}

interface OutageMeasured {
  commits: number;
  restored: number;
  catchUpMs: number | null;
  pendingMiB: number;
  rebuildMs: number;
  dbMiB: number;
}

/**
 * A 30 s bucket outage at 100 commits/s (a fault proxy in this process answering 503 in front of s3rver): how
 * long after the bucket's return the spool is empty, and whether the bucket then restores every commit.
 */
async function runOutage(root: string, port: number, recipient: string, identityFile: string): Promise<OutageMeasured> {
  const dir = path.join(root, 'outage');
  fs.mkdirSync(dir, { recursive: true });
  const proxy = new FaultProxy(`http://127.0.0.1:${port}`);
  await proxy.start();
  const dbFile = path.join(dir, 'live.db');
  const db = new Database(dbFile);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('wal_autocheckpoint = 0');
  db.pragma('busy_timeout = 5000');
  db.exec('CREATE TABLE events (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, body TEXT NOT NULL)');
  const { bucket, store } = benchReplicaStore(proxy.endpoint, `${PREFIX}outage/`, recipient, identityFile, 10_000);
  const shipper = benchShipper(dbFile, dir, store, () => Date.now());
  let returnedAt: number | null = null;
  let caughtUpAt: number | null = null;
  let pendingMax = 0;
  const scheduler = new RoundScheduler({
    intervalMs: SYNC_INTERVAL_MS,
    now: () => Date.now(),
    walStamp: () => shipper.walStamp(),
    run: async () => {
      const shipped = await shipper.round();
      pendingMax = Math.max(pendingMax, shipper.spool.pendingBytes());
      if (returnedAt !== null && caughtUpAt === null && shipper.spool.entries().length === 0) {
        caughtUpAt = Date.now();
      }
      return shipped;
    },
  });
  try {
    shipper.start();
    await shipper.settle();
    await shipper.round();
    progress(`outage: 100 commits/s, the bucket away for ${OUTAGE.downMs / 1000} s`);
    let commits = 0;
    const insert = db.prepare('INSERT INTO events (at, body) VALUES (?, ?)');
    scheduler.start();
    const writer = setInterval(() => {
      insert.run(Date.now(), `event ${commits++} ${'x'.repeat(100)}`);
    }, 10);
    await new Promise((resolve) => setTimeout(resolve, OUTAGE.beforeMs));
    proxy.mode = 'http503';
    await new Promise((resolve) => setTimeout(resolve, OUTAGE.downMs));
    proxy.mode = 'pass';
    returnedAt = Date.now();
    await new Promise((resolve) => setTimeout(resolve, OUTAGE.afterMs));
    clearInterval(writer);
    scheduler.stop();
    while (scheduler.current) {
      await scheduler.current;
    }
    // Everything committed is shipped by one more round; then the whole history is rebuilt from the bucket.
    await shipper.round();
    const started = Date.now();
    const rebuilt = await rebuildAt(store, 'latest', { scratchDir: dir });
    const rebuildMs = Date.now() - started;
    const check = new Database(rebuilt.file, { readonly: true });
    const restored = (check.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n;
    check.close();
    return {
      commits,
      restored,
      catchUpMs: returnedAt !== null && caughtUpAt !== null ? caughtUpAt - returnedAt : null,
      pendingMiB: pendingMax / 1048576,
      rebuildMs,
      dbMiB: fs.statSync(rebuilt.file).size / 1048576,
    };
  } finally {
    scheduler.stop();
    shipper.stop();
    db.close();
    bucket.destroy();
    await proxy.close();
  }
}

function seconds(ms: number): string {
  return `${fixed(ms / 1000, 3)} s`;
}

export async function runReplicationBench(options: BenchOptions): Promise<number> {
  const root = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'mc-repl-bench-'));
  fs.mkdirSync(root, { recursive: true });
  const s3Dir = path.join(root, 's3');
  fs.mkdirSync(s3Dir, { recursive: true });
  const { port, child } = await startS3rver(s3Dir);
  const { text, recipient } = await generateIdentityFile(new Date());
  const identityFile = path.join(root, 'identity.txt');
  fs.writeFileSync(identityFile, text, { mode: 0o600 });
  const scenarios: Scenario[] = [
    { name: 'no replication, 100/s', commitsPerSecond: 100, replication: 'off' },
    { name: 'main thread, 100/s', commitsPerSecond: 100, replication: 'inline' },
    { name: 'worker, 100/s', commitsPerSecond: 100, replication: 'worker' },
    { name: 'worker, 1000/s', commitsPerSecond: 1000, replication: 'worker' },
  ];
  const load0 = os.loadavg();
  try {
    const results: Measured[] = [];
    for (const scenario of scenarios) {
      results.push(await runScenario(scenario, root, port, recipient, identityFile));
    }
    const base = results[0];
    const rows = results.map((r) => {
      const streaming = r.scenario.replication !== 'off';
      const p50 = percentile(r.staleness, 50);
      const p99 = percentile(r.staleness, 99);
      return [
        r.scenario.name,
        String(r.commits),
        streaming ? seconds(p50) : '',
        streaming ? seconds(p99) : '',
        streaming && r.staleness.length > 0 ? seconds(Math.max(...r.staleness)) : '',
        streaming ? `${r.rounds} / ${r.roundP50Ms} / ${r.roundMaxMs}` : '',
        `${fixed(r.cpuPercent, 1)}${streaming ? ` (+${fixed(r.cpuPercent - base.cpuPercent, 1)})` : ''}`,
        `${fixed(r.rssGrowthMiB, 1)}`,
        `${fixed(r.loopP99Ms, 1)}${streaming ? ` (+${fixed(r.loopP99Ms - base.loopP99Ms, 1)})` : ''}`,
        fixed(r.walMaxMiB, 1),
      ];
    });
    const outage = await runOutage(root, port, recipient, identityFile);
    const scaled = await runScaledRebuild(root, port, recipient, identityFile, SCALED);
    const load1 = os.loadavg();
    process.stdout.write(
      `\nReplication, ${DURATION_MS / 1000} s per row, REPLICATION_SYNC_INTERVAL_MS ${SYNC_INTERVAL_MS}, s3rver in a ` +
        `child process, ${os.cpus().length} CPUs, load before ${load0.map((l) => fixed(l, 1)).join(' ')}, after ` +
        `${load1.map((l) => fixed(l, 1)).join(' ')} (shared machine: noisy)\n` +
        `Targets: staleness p50 ≤ ${TARGETS.p50Seconds} s and p99 ≤ ${TARGETS.p99Seconds} s at 100/s, p99 ≤ ` +
        `${TARGETS.p99At1000Seconds} s at 1000/s; cost at 100/s ≤ ${TARGETS.cpuPercent} % of a core, RSS ≤ ` +
        `+${TARGETS.rssMiB} MiB, event loop p99 ≤ +${TARGETS.loopMs} ms (the + columns are against the first row)\n\n` +
        markdownTable(
          [
            'scenario',
            'commits',
            'staleness p50',
            'p99',
            'max',
            'rounds / p50 / max ms',
            'CPU % of a core',
            'RSS growth MiB',
            'event loop p99 ms',
            'WAL max MiB',
          ],
          rows,
        ) +
        `\n\nBucket outage (${OUTAGE.downMs / 1000} s of 503 at 100 commits/s, worker; target: nothing lost, caught up ` +
        `within ${OUTAGE.catchUpSeconds} s of its return)\n\n` +
        markdownTable(
          ['commits', 'restored from the bucket', 'caught up after return', 'spool max MiB', 'rebuild latest'],
          [
            [
              String(outage.commits),
              String(outage.restored),
              outage.catchUpMs === null ? 'not within the run' : seconds(outage.catchUpMs),
              fixed(outage.pendingMiB, 1),
              `${seconds(outage.rebuildMs)} (${fixed(outage.dbMiB, 1)} MiB database)`,
            ],
          ],
        ) +
        `\n\nPoint-in-time rebuild at scale (target for 1 GiB and one hour at 100/s: ≤ 30 s; ` +
        `\`npm run bench -- --pitr\` builds that)\n\n` +
        scaledRebuildTable(scaled) +
        '\n',
    );
    return 0;
  } finally {
    child.kill();
    if (!options.keep) {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
}
