/**
 * `npm run bench -- --replication`: staleness of continuous replication (the time from a commit to the moment it is
 * restorable from the bucket) at 100 commits/s, its CPU and RSS cost, and the event loop's delay meanwhile, against
 * s3rver on loopback started in this process (which adds its own CPU to the loop: the numbers are pessimistic and,
 * on a shared machine, noisy).
 *
 * A writer on this thread commits one small row every 10 ms (each its own transaction, as the app does); the
 * Shipper runs one round every REPLICATION_SYNC_INTERVAL_MS (1000) as the service does. A commit counts as
 * restorable once a round that started after it has finished with the spool empty.
 */
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { runSnapshotWorker } from '../src/sqlite/snapshot';
import { AgeCrypto, generateIdentityFile } from '../src/offsite/age-crypto';
import { OffsiteBucket } from '../src/offsite/offsite-bucket';
import { ReplicaStore } from '../src/replication/replica-store';
import { Shipper } from '../src/replication/shipper';
import { fixed, markdownTable, percentile, progress, type BenchOptions } from './bench-util';

const BUCKET = 'mc-bench';
const PREFIX = 'mission-control/';
const COMMIT_EVERY_MS = 10;
const SYNC_INTERVAL_MS = 1000;
const DURATION_MS = 20_000;
const TARGETS = { p50Seconds: 0.6, p99Seconds: 1.5, cpuPercent: 5, rssMiB: 64 };

export async function runReplicationBench(options: BenchOptions): Promise<number> {
  const root = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'mc-repl-bench-'));
  fs.mkdirSync(root, { recursive: true });
  const s3Dir = path.join(root, 's3');
  fs.mkdirSync(s3Dir, { recursive: true });
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const S3rver = require('s3rver') as new (o: Record<string, unknown>) => {
    run(): Promise<{ port: number }>;
    close(): Promise<void>;
  };
  const s3 = new S3rver({
    port: 0,
    address: '127.0.0.1',
    directory: s3Dir,
    silent: true,
    allowMismatchedSignatures: true,
    configureBuckets: [{ name: BUCKET }],
  });
  const { port } = await s3.run();
  const { text, recipient } = await generateIdentityFile(new Date());
  const identityFile = path.join(root, 'identity.txt');
  fs.writeFileSync(identityFile, text, { mode: 0o600 });
  const dbFile = path.join(root, 'live.db');
  const db = new Database(dbFile);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE events (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, body TEXT NOT NULL)');
  const bucket = new OffsiteBucket(
    {
      bucket: BUCKET,
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      prefix: PREFIX,
      forcePathStyle: true,
      recipients: [recipient],
      allowPlaintext: false,
    },
    10_000,
  );
  const shipper = new Shipper({
    dbPath: dbFile,
    spoolDir: path.join(root, 'replication'),
    store: new ReplicaStore(bucket, new AgeCrypto([recipient], identityFile)),
    now: () => Date.now(),
    snapshot: async (dest) => {
      await runSnapshotWorker(dbFile, dest, { hash: false });
    },
    onGeneration: () => undefined,
    log: () => undefined,
  });
  try {
    shipper.start();
    await shipper.settle();
    await shipper.round();
    progress(`writing one commit every ${COMMIT_EVERY_MS} ms for ${DURATION_MS / 1000} s`);
    const commits: number[] = [];
    let measuredUpTo = 0;
    const staleness: number[] = [];
    const insert = db.prepare('INSERT INTO events (at, body) VALUES (?, ?)');
    const writer = setInterval(() => {
      const at = Date.now();
      insert.run(at, `event ${commits.length} ${'x'.repeat(100)}`);
      commits.push(at);
    }, COMMIT_EVERY_MS);
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const cpu0 = process.cpuUsage();
    const rss0 = process.memoryUsage.rss();
    let rssMax = rss0;
    const started = Date.now();
    let rounds = 0;
    const roundMs: number[] = [];
    while (Date.now() - started < DURATION_MS) {
      await new Promise((resolve) => setTimeout(resolve, SYNC_INTERVAL_MS));
      const roundStart = Date.now();
      const known = commits.length;
      await shipper.round();
      roundMs.push(Date.now() - roundStart);
      rounds++;
      rssMax = Math.max(rssMax, process.memoryUsage.rss());
      if (shipper.spool.entries().length === 0) {
        const done = Date.now();
        for (let i = measuredUpTo; i < known; i++) {
          if (commits[i] <= roundStart) {
            staleness.push(done - commits[i]);
            measuredUpTo = i + 1;
          }
        }
      }
    }
    clearInterval(writer);
    const cpu = process.cpuUsage(cpu0);
    const elapsed = Date.now() - started;
    loop.disable();
    const cpuPercent = ((cpu.user + cpu.system) / 1000 / elapsed) * 100;
    const p50 = percentile(staleness, 50) / 1000;
    const p99 = percentile(staleness, 99) / 1000;
    const max = Math.max(...staleness) / 1000;
    const rows = [
      ['staleness p50', `${fixed(p50, 3)} s`, `≤ ${TARGETS.p50Seconds} s`, p50 <= TARGETS.p50Seconds ? 'yes' : 'NO'],
      ['staleness p99', `${fixed(p99, 3)} s`, `≤ ${TARGETS.p99Seconds} s`, p99 <= TARGETS.p99Seconds ? 'yes' : 'NO'],
      ['staleness max', `${fixed(max, 3)} s`, '', ''],
      [
        'round (read, gzip, age, spool, upload) p50 / max',
        `${percentile(roundMs, 50)} / ${Math.max(...roundMs)} ms`,
        '',
        '',
      ],
      [
        'CPU of this process (writer, shipper, s3rver)',
        `${fixed(cpuPercent, 1)} % of a core`,
        `≤ ${TARGETS.cpuPercent} % (shipper alone)`,
        '',
      ],
      ['RSS growth', `${fixed((rssMax - rss0) / 1048576, 1)} MiB`, `≤ ${TARGETS.rssMiB} MiB`, ''],
      ['event loop delay p99', `${fixed(loop.percentile(99) / 1e6, 1)} ms`, '', ''],
    ];
    process.stdout.write(
      `\nReplication, ${commits.length} commits at 1 per ${COMMIT_EVERY_MS} ms, ${rounds} rounds of ` +
        `${SYNC_INTERVAL_MS} ms, s3rver in this process, ${os.cpus().length} CPUs, load ${os
          .loadavg()
          .map((l) => fixed(l, 1))
          .join(' ')} (shared machine: noisy)\n\n` +
        markdownTable(['measure', 'value', 'target', 'met'], rows) +
        '\n',
    );
    return 0;
  } finally {
    shipper.stop();
    db.close();
    bucket.destroy();
    await s3.close();
    if (!options.keep) {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
}
