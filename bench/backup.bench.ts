/**
 * `npm run bench` — how the service's hot backup compares with SQLite's own tools, and what it costs the running
 * app while it runs. Never run by CI. See USAGE in bench-util.ts for the flags.
 *
 * One run, one database (the real schema, migrated by the real app, then grown with random filler rows), one
 * folder (the app's backups folder) for every copy. Each tool runs `--runs` times in a rotating order; before every
 * timed run the WAL is checkpointed (TRUNCATE), `sync` flushes earlier copies and `cat db > /dev/null` warms the
 * page cache (it cannot be dropped without root), all untimed. Progress goes to stderr, the report to stdout.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { Database } from 'better-sqlite3';
import { DataSource } from 'typeorm';
import type { SnapshotOptions } from '../src/sqlite/snapshot';
import { type AppModules, HttpWriterProcess, loadApp, removeBuild } from './bench-app';
import { checkpointTruncate, fillDatabase } from './bench-db';
import { runOffsiteBench } from './offsite.bench';
import { runMemoryBench } from './memory.bench';
import { runPreemptionBench } from './preemption.bench';
import { runPitrEndToEnd } from './pitr-e2e';
import { runPitrBench } from './pitr.bench';
import { runReplicationBench } from './replication.bench';
import {
  type ComparedRun,
  type Condition,
  sideBySide,
  startStress,
  stopStress,
  stressAvailable,
  type StressHandle,
} from './bench-stress';
import { LatencyProbe, type LatencySamples, noSamples, RssProbe, StallProbe, type StallReport } from './bench-probes';
import {
  type BenchOptions,
  fixed,
  markdownTable,
  maxOf,
  MB,
  median,
  MIB,
  mustRun,
  parseArgs,
  percentile,
  progress,
  runCommand,
  sleep,
  USAGE,
  UsageError,
} from './bench-util';

const FREE_SPACE_FACTOR = 2.5;
const WRITE_INTERVAL_MS = 5;
/** The monitor the issue describes: another client pinging `GET /api/health` every 10 ms. */
const HEALTH_INTERVAL_MS = 10;
const WARM_UP_MS = 1500;
const BASELINE_MS = 3000;
const LIST_FILES = 10_000;
const LIST_REPEATS = 5;
const LIST_SETTLE_TIMEOUT_MS = 600_000;
const ADMIN = { user: 'bench-admin', pass: 'bench-password-123' };

/** Issue #11, throughput and health as revised by issue #19. */
const TARGETS = {
  throughputRatio: 0.75,
  stressThroughputRatio: 0.6,
  stressHealthP99Ms: 25,
  healthMaxMs: 50,
  loopP99Ms: 5,
  loopMaxMs: 20,
  healthP99Ms: 10,
  writeP99Ms: 50,
  listMs: 50,
  rssMiB: 64,
  restoreFactor: 3,
};

const ALL_WORKER_TOOLS = [
  'worker',
  'worker-nice0',
  'worker-nice10',
  'worker-nice19',
  'worker-idle',
  'worker-serial',
] as const;
const ALL_TOOLS = ['service', 'service-load', ...ALL_WORKER_TOOLS, 'cli-backup', 'vacuum-into', 'cp'] as const;
type ToolId = (typeof ALL_TOOLS)[number];
/** The tools of this run (`--tools`); `cli-backup` is always in, every ratio needs it. */
let TOOLS: readonly ToolId[] = ALL_TOOLS;
let WORKER_TOOLS: readonly WorkerToolId[] = ALL_WORKER_TOOLS;
type WorkerToolId = (typeof ALL_WORKER_TOOLS)[number];
type CliToolId = Exclude<ToolId, 'service' | 'service-load' | WorkerToolId>;

function isWorkerTool(tool: ToolId): tool is WorkerToolId {
  return (ALL_WORKER_TOOLS as readonly ToolId[]).includes(tool);
}

/** How each worker tool calls `runSnapshotWorker`. */
const WORKER_OPTIONS: Record<WorkerToolId, SnapshotOptions> = {
  worker: {},
  'worker-nice0': { nice: 0 },
  'worker-nice10': { nice: 10 },
  'worker-nice19': { nice: 19 },
  'worker-idle': { idle: true },
  'worker-serial': { checkThreads: 'serial' },
};

const TOOL_LABELS: Record<ToolId, string> = {
  service: 'This service: `BackupsService.create()`, no other load',
  'service-load': 'This service: `BackupsService.create()` under the write load below',
  worker:
    "The service's snapshot job alone (`runSnapshotWorker` as the service calls it: child process, " +
    'backup API, at the default nice value; no publish, audit or retention)',
  'worker-nice0': "The same at the service's priority (`nice: 0`)",
  'worker-nice10': 'The same at `nice: 10`',
  'worker-nice19': 'The same at `nice: 19`',
  'worker-idle': 'The same in the SCHED_IDLE class (`idle: true`, via chrt)',
  'worker-serial': 'The same with quick_check and sha256 one after the other (`checkThreads: serial`)',
  'cli-backup': '`sqlite3 db ".backup \'dest\'"`',
  'vacuum-into': '`sqlite3 db "VACUUM INTO \'dest\'"`',
  cp: '`cp db dest` (quiesced file)',
};

interface ToolRun {
  tool: ToolId;
  round: number;
  bytes: number;
  ms: number;
  /** Service runs: what happened on the app's side meanwhile (writes only for `service-load`). */
  load?: LoadResult;
  /** Service runs: the duration the service itself reported (it starts after the lock is taken). */
  reportedMs?: number;
  /** Worker runs: the phases the worker reported. */
  phases?: WorkerPhases;
  /** How the snapshot job copied (service and worker runs that report it). */
  method?: string;
  /** The snapshot child's own peak RSS, when it ran in a child process. */
  childPeakRssBytes?: number;
}

interface WorkerPhases {
  /** The online-backup page copy. */
  copyMs: number;
  /** Everything in the worker: the copy, then journal switch, quick_check, fsync (and sha256 when the worker has it). */
  workerMs: number;
  /** The sha256 of the copy, when this version of the worker computes one. */
  hashMs?: number;
  /** quick_check, fsync and sha256 side by side after the copy (child-process job only). */
  checkMs?: number;
}

interface Bench {
  options: BenchOptions;
  modules: AppModules;
  app: NestExpressApplication;
  service: InstanceType<AppModules['BackupsService']>;
  dataSource: DataSource;
  handle: Database;
  dbPath: string;
  backupsDir: string;
  baseUrl: string;
  apiKey: string;
  httpWriter: HttpWriterProcess;
  healthPinger: HttpWriterProcess;
}

// ---------------------------------------------------------------------------------------------------------------
// Folder, disk space, tools

interface WorkFolder {
  dir: string;
  /** True when this run created the folder (then it may remove it whole). */
  created: boolean;
}

function prepareFolder(options: BenchOptions): WorkFolder {
  if (options.dir === undefined) {
    return { dir: fs.mkdtempSync(path.join(os.tmpdir(), 'mc-bench-')), created: true };
  }
  const dir = path.resolve(options.dir);
  if (fs.existsSync(dir)) {
    if (!fs.statSync(dir).isDirectory() || fs.readdirSync(dir).length > 0) {
      throw new UsageError(`--dir ${dir} must be an empty folder or not exist (the bench removes it at the end)`);
    }
    return { dir, created: false };
  }
  fs.mkdirSync(dir, { recursive: true });
  return { dir, created: true };
}

function removeFolder(folder: WorkFolder): void {
  if (folder.created) {
    fs.rmSync(folder.dir, { recursive: true, force: true });
    return;
  }
  for (const entry of fs.readdirSync(folder.dir)) {
    fs.rmSync(path.join(folder.dir, entry), { recursive: true, force: true });
  }
}

function checkFreeSpace(dir: string, targetBytes: number): void {
  const stats = fs.statfsSync(dir);
  const free = stats.bavail * stats.bsize;
  const needed = targetBytes * FREE_SPACE_FACTOR;
  if (free < needed) {
    throw new UsageError(
      `Not enough free disk space in ${dir}: ${(free / MIB).toFixed(0)} MiB free, ` +
        `${(needed / MIB).toFixed(0)} MiB needed (${FREE_SPACE_FACTOR}x the ${(targetBytes / MIB).toFixed(0)} MiB ` +
        `database: the database, one copy at a time, WAL and slack). Use a smaller --size or another --dir.`,
    );
  }
  progress(
    `disk: ${(free / MIB / 1024).toFixed(1)} GiB free in ${dir}, ${(needed / MIB / 1024).toFixed(1)} GiB needed`,
  );
}

function sqlQuoted(file: string): string {
  return `'${file.replace(/'/g, "''")}'`;
}

function removeWithSiblings(file: string): void {
  for (const suffix of ['', '-journal', '-wal', '-shm']) {
    fs.rmSync(file + suffix, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The app

function benchEnv(dbPath: string, apiKey: string): Record<string, string> {
  return {
    MISSION_CONTROL_DB_PATH: dbPath,
    AUTH_USER: ADMIN.user,
    AUTH_PASS: ADMIN.pass,
    API_KEY: apiKey,
    LOG_LEVEL: 'error',
  };
}

async function buildDatabase(modules: AppModules, dbPath: string, targetBytes: number): Promise<void> {
  progress('migrating: booting the app once on the new database');
  const app = await modules.createApp(modules.loadConfig(benchEnv(dbPath, randomBytes(16).toString('hex'))));
  app.useLogger(['error', 'warn']);
  await app.init();
  await app.close();
  progress(`filling to ${(targetBytes / MIB).toFixed(0)} MiB with random 4000-byte blobs (bench_blob)`);
  const fill = fillDatabase(dbPath, targetBytes);
  progress(
    `  database: ${(fill.bytes / MIB).toFixed(1)} MiB, ${fill.rows} filler rows, page size ${fill.pageSize}, ` +
      `built in ${(fill.ms / 1000).toFixed(1)} s`,
  );
}

async function startBench(options: BenchOptions, modules: AppModules, dbPath: string): Promise<Bench> {
  const apiKey = randomBytes(24).toString('hex');
  const config = modules.loadConfig(benchEnv(dbPath, apiKey));
  const app = await modules.createApp(config);
  app.useLogger(['error', 'warn']);
  await app.listen(0, '127.0.0.1');
  const address = app.getHttpServer().address() as AddressInfo;
  const dataSource = app.get(DataSource);
  const handle = (dataSource.driver as unknown as { databaseConnection: Database }).databaseConnection;
  const httpWriter = await HttpWriterProcess.start();
  const healthPinger = await HttpWriterProcess.start();
  return {
    options,
    modules,
    app,
    service: app.get(modules.BackupsService),
    dataSource,
    handle,
    dbPath,
    backupsDir: config.backupsDir,
    baseUrl: `http://127.0.0.1:${address.port}`,
    apiKey,
    httpWriter,
    healthPinger,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Probes: small writes through the app, the event loop, RSS

let writeCounter = 0;

/** One small INSERT through the app's own TypeORM DataSource (the same better-sqlite3 connection the app uses). */
function dbWrite(bench: Bench): () => Promise<void> {
  return async () => {
    await bench.dataSource.query(
      `INSERT INTO audit_log (action, actor, target_type, detail, created_at) VALUES (?, ?, ?, ?, ?)`,
      ['bench_write', 'bench', 'bench', JSON.stringify({ n: ++writeCounter }), Math.floor(Date.now() / 1000)],
    );
  };
}

interface LoadResult {
  loopP99Ms: number;
  loopMaxMs: number;
  db: LatencySamples;
  http: LatencySamples;
  /** GET /api/health every HEALTH_INTERVAL_MS from another process (every observed run). */
  health: LatencySamples;
  rssGrowthBytes: number;
  rssAnonGrowthBytes: number;
  stall: StallReport;
}

/**
 * Watches the app while `work` runs: event loop, RSS and a client pinging GET /api/health always, and with `writes`
 * the two small-write loops.
 */
async function underObservation<T>(
  bench: Bench,
  writes: boolean,
  work: () => Promise<T>,
): Promise<{ value: T; ms: number; load: LoadResult }> {
  const loop = monitorEventLoopDelay({ resolution: 1 });
  const db = new LatencyProbe(dbWrite(bench), WRITE_INTERVAL_MS);
  const rss = new RssProbe();
  const stall = new StallProbe();
  rss.start();
  stall.start();
  loop.enable();
  bench.healthPinger.begin(bench.baseUrl, bench.apiKey, HEALTH_INTERVAL_MS, 'health');
  if (writes) {
    db.start();
    bench.httpWriter.begin(bench.baseUrl, bench.apiKey, WRITE_INTERVAL_MS);
  }
  const started = performance.now();
  let ms = NaN;
  let rssGrowthBytes = NaN;
  let rssAnonGrowthBytes = NaN;
  let stallReport: StallReport;
  let value: T;
  try {
    value = await work();
  } finally {
    ms = performance.now() - started;
    loop.disable();
    stallReport = stall.stop();
    rssGrowthBytes = rss.stop();
    rssAnonGrowthBytes = rss.anonGrowth();
  }
  const [dbResult, httpResult, healthResult] = writes
    ? await Promise.all([db.stop(), bench.httpWriter.end(), bench.healthPinger.end()])
    : [noSamples(), noSamples(), await bench.healthPinger.end()];
  return {
    value,
    ms,
    load: {
      loopP99Ms: loop.percentile(99) / 1e6,
      loopMaxMs: loop.max / 1e6,
      db: dbResult,
      http: httpResult,
      health: healthResult,
      rssGrowthBytes,
      rssAnonGrowthBytes,
      stall: stallReport,
    },
  };
}

async function measureIdle(bench: Bench, ms: number, writes = true): Promise<LoadResult> {
  const { load } = await underObservation(bench, writes, () => sleep(ms));
  const failed = load.db.firstError ?? load.http.firstError ?? load.health.firstError;
  if (failed !== undefined) {
    throw new Error(`small writes or health pings failed without a backup running: ${failed}`);
  }
  return load;
}

// ---------------------------------------------------------------------------------------------------------------
// The timed runs

/** Untimed, before every timed run: a quiesced main file, earlier copies flushed, the database in the page cache. */
async function prepareRun(bench: Bench): Promise<number> {
  checkpointTruncate(bench.handle);
  await mustRun('sync', []);
  await mustRun('cat', [bench.dbPath], true);
  return fs.statSync(bench.dbPath).size;
}

async function runService(bench: Bench, tool: 'service' | 'service-load', round: number, bytes: number) {
  const { value, ms, load } = await underObservation(bench, tool === 'service-load', () =>
    bench.service.create({ actor: { id: null, username: 'bench' }, kind: 'manual' }),
  );
  const copy = path.join(bench.backupsDir, value.name);
  const copySize = fs.statSync(copy).size;
  if (copySize < bytes * 0.9) {
    throw new Error(`service backup ${value.name} is ${copySize} bytes, source ${bytes}`);
  }
  fs.rmSync(copy);
  const run: ToolRun = { tool, round, bytes, ms, load, reportedMs: value.duration_ms };
  return run;
}

async function runCli(bench: Bench, tool: CliToolId, round: number, bytes: number): Promise<ToolRun> {
  const dest = path.join(bench.backupsDir, `bench-${tool}.db`);
  removeWithSiblings(dest);
  const commands: Record<CliToolId, [string, string[]]> = {
    'cli-backup': ['sqlite3', [bench.dbPath, `.backup ${sqlQuoted(dest)}`]],
    'vacuum-into': ['sqlite3', [bench.dbPath, `VACUUM INTO ${sqlQuoted(dest)}`]],
    cp: ['cp', [bench.dbPath, dest]],
  };
  const [command, args] = commands[tool];
  const result = await mustRun(command, args);
  const copySize = fs.statSync(dest).size;
  if (copySize < bytes * 0.9) {
    throw new Error(`${tool} copy is ${copySize} bytes, source ${bytes}`);
  }
  removeWithSiblings(dest);
  return { tool, round, bytes, ms: result.ms };
}

async function timedRuns(bench: Bench, label = ''): Promise<ToolRun[]> {
  const runs: ToolRun[] = [];
  for (let round = 1; round <= bench.options.runs; round++) {
    // Rotate the order each round so no tool is always first (or always right after another one's writes).
    const order = TOOLS.map((_, i) => TOOLS[(i + round - 1) % TOOLS.length]);
    for (const tool of order) {
      const bytes = await prepareRun(bench);
      const run =
        tool === 'service' || tool === 'service-load'
          ? await runService(bench, tool, round, bytes)
          : isWorkerTool(tool)
            ? await runWorker(bench, tool, round, bytes)
            : await runCli(bench, tool, round, bytes);
      progress(
        `  ${label}round ${round} ${tool.padEnd(13)} ${fixed(mbps(run), 0).padStart(5)} MB/s (${fixed(run.ms, 0)} ms)`,
      );
      runs.push(run);
    }
  }
  return runs;
}

function compared(run: ToolRun): ComparedRun {
  return {
    tool: run.tool,
    bytes: run.bytes,
    ms: run.ms,
    health: run.load?.health,
    loopP99Ms: run.load?.loopP99Ms,
    loopMaxMs: run.load?.loopMaxMs,
    checkMs: run.phases?.checkMs,
  };
}

function mbps(run: { bytes: number; ms: number }): number {
  return run.bytes / MB / (run.ms / 1000);
}

/**
 * The service's snapshot job on its own, into a file of the backups folder, watched like a service run (event loop,
 * RSS, health pings; no writes) so that the child process and the worker thread can be compared.
 */
async function runWorker(bench: Bench, tool: WorkerToolId, round: number, bytes: number): Promise<ToolRun> {
  const dest = path.join(bench.backupsDir, `.mc-tmp-${'0'.repeat(16)}.db.part`);
  removeWithSiblings(dest);
  fs.writeFileSync(dest, '', { mode: 0o600 });
  const {
    value: result,
    ms,
    load,
  } = await underObservation(bench, false, () =>
    bench.modules.runSnapshotWorker(bench.dbPath, dest, WORKER_OPTIONS[tool]),
  );
  removeWithSiblings(dest);
  const extra = result as { hashMs?: unknown; checkMs?: unknown; method?: unknown; peakRssBytes?: unknown };
  return {
    tool,
    round,
    bytes,
    ms,
    load,
    method: typeof extra.method === 'string' ? extra.method : 'backup-api (thread)',
    childPeakRssBytes: typeof extra.peakRssBytes === 'number' ? extra.peakRssBytes : undefined,
    phases: {
      copyMs: result.copyMs,
      workerMs: result.totalMs,
      hashMs: typeof extra.hashMs === 'number' ? extra.hashMs : undefined,
      checkMs: typeof extra.checkMs === 'number' ? extra.checkMs : undefined,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Listing 1,000 backups

interface ListResult {
  /** The first list() after the files appeared (it may queue background work for files it has not seen). */
  firstMs: number;
  /** How long until every listed backup had a sha256, when list() reports one (NaN if it never does). */
  settleMs: number;
  serviceMs: number[];
  httpMs: number[];
  count: number;
}

function backupName(i: number): string {
  const at = new Date(Date.UTC(2026, 0, 1) + i * 60_000);
  const p = (n: number): string => String(n).padStart(2, '0');
  const stamp =
    `${at.getUTCFullYear()}-${p(at.getUTCMonth() + 1)}-${p(at.getUTCDate())}` +
    `_${p(at.getUTCHours())}-${p(at.getUTCMinutes())}-${p(at.getUTCSeconds())}`;
  return `mc-backup-${stamp}.db`;
}

/** True once no listed backup still lacks a sha256 (or when entries carry no sha256 field at all). */
function allHashed(backups: readonly object[]): boolean {
  return backups.every((b) => !('sha256' in b) || b.sha256 !== null);
}

/**
 * 1,000 files named like real backups. They arrive without the service knowing them, so the first list() may queue
 * background work (hashing, manifests); the target is measured once that has settled — the state of 1,000 backups
 * the service made itself — and the first call is reported apart.
 */
async function measureList(bench: Bench): Promise<ListResult> {
  const names = Array.from({ length: LIST_FILES }, (_, i) => backupName(i));
  const content = Buffer.alloc(1024);
  for (const name of names) {
    fs.writeFileSync(path.join(bench.backupsDir, name), content, { mode: 0o600 });
  }
  try {
    let started = performance.now();
    let listed = await bench.service.list();
    const firstMs = performance.now() - started;
    let settleMs = NaN;
    const settleStarted = performance.now();
    while (performance.now() - settleStarted < LIST_SETTLE_TIMEOUT_MS) {
      if (allHashed(listed.backups)) {
        settleMs = performance.now() - settleStarted;
        break;
      }
      await sleep(250);
      listed = await bench.service.list();
    }
    const serviceMs: number[] = [];
    for (let i = 0; i < LIST_REPEATS; i++) {
      started = performance.now();
      listed = await bench.service.list();
      serviceMs.push(performance.now() - started);
    }
    const httpMs: number[] = [];
    for (let i = 0; i < LIST_REPEATS; i++) {
      started = performance.now();
      const response = await fetch(`${bench.baseUrl}/api/backup`, { headers: { 'x-api-key': bench.apiKey } });
      await response.arrayBuffer();
      httpMs.push(performance.now() - started);
      if (response.status !== 200) {
        throw new Error(`GET /api/backup answered ${response.status}`);
      }
    }
    if (listed.backups.length < LIST_FILES) {
      throw new Error(`list() returned ${listed.backups.length} backups, expected at least ${LIST_FILES}`);
    }
    return { firstMs, settleMs, serviceMs, httpMs, count: listed.backups.length };
  } finally {
    for (const name of names) {
      fs.rmSync(path.join(bench.backupsDir, name), { force: true });
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Online restore

interface RestoreRun {
  ms: number;
  load: LoadResult;
}

/**
 * `POST /api/backup/restore` of a fresh backup of the bench database, over HTTP with the API key: verify
 * (integrity_check + sha256), safety backup, page copy into the live database, migrations, health. Timed from the
 * client; the backup and the safety backup it leaves are removed afterwards.
 */
async function measureRestore(bench: Bench): Promise<RestoreRun> {
  await prepareRun(bench);
  const created = await bench.service.create({ actor: { id: null, username: 'bench' }, kind: 'manual' });
  await prepareRun(bench);
  const leftovers = new Set([created.name]);
  try {
    const { value, ms, load } = await underObservation(bench, false, async () => {
      const response = await fetch(`${bench.baseUrl}/api/backup/restore`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': bench.apiKey },
        body: JSON.stringify({ name: created.name }),
      });
      const text = await response.text();
      if (response.status !== 200) {
        throw new Error(`POST /api/backup/restore answered ${response.status}: ${text.slice(0, 300)}`);
      }
      return JSON.parse(text) as { safety_backup?: string };
    });
    if (value.safety_backup) {
      leftovers.add(value.safety_backup);
    }
    return { ms, load };
  } finally {
    for (const name of leftovers) {
      fs.rmSync(path.join(bench.backupsDir, name), { force: true });
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Report

async function machineLines(bench: Bench, dir: string): Promise<string[]> {
  const cpus = os.cpus();
  const appSqlite = String(bench.handle.prepare('select sqlite_version()').pluck().get());
  const cli = await runCommand('sqlite3', ['--version']);
  const df = await runCommand('df', ['-PT', dir]);
  const dfFields = (df.stdout.trim().split('\n')[1] ?? '').split(/\s+/);
  const pageSize = Number(bench.handle.pragma('page_size', { simple: true }));
  const dbBytes = fs.statSync(bench.dbPath).size;
  return [
    `- Date: ${new Date().toISOString()}`,
    `- CPU: ${cpus[0]?.model ?? 'unknown'} — ${cpus.length} cores visible (os.availableParallelism() = ` +
      `${os.availableParallelism()})`,
    `- Memory: ${(os.totalmem() / MIB / 1024).toFixed(1)} GiB total; OS ${os.type()} ${os.release()}`,
    `- Node ${process.version}; SQLite ${appSqlite} in the app (better-sqlite3); sqlite3 CLI ` +
      `${cli.stdout.trim().split(' ')[0] || 'unknown'}`,
    `- Folder: ${dir} on ${dfFields[0] ?? '?'} (${dfFields[1] ?? '?'}, mounted on ${dfFields[6] ?? '?'})`,
    `- Database: ${(dbBytes / MIB).toFixed(1)} MiB (${dbBytes} bytes), page size ${pageSize}, WAL, app schema + ` +
      `bench_blob filler of random 4000-byte blobs; requested --size ${bench.options.sizeMiB}`,
    `- App loaded from: ${bench.modules.origin}`,
    `- Load average (1/5/15 min) at start: ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' / ')} — anything else running on the machine shows up in every number below`,
  ];
}

function verdict(ok: boolean): string {
  return ok ? 'yes' : '**NO**';
}

function target(value: number, limit: number, unit: string): [string, string] {
  return [`≤ ${limit} ${unit}`, verdict(value <= limit)];
}

function pair(a: number, b: number): string {
  return `${fixed(a)} / ${fixed(b)}`;
}

interface Results {
  machine: string[];
  idle: LoadResult;
  /** No backup and no writes: only the health pinger (what the machine itself costs). */
  quiet: LoadResult;
  runs: ToolRun[];
  list: ListResult;
  restore: RestoreRun;
  loadAtEnd: number[];
  /** The quiet rounds and, with --stress, the same rounds beside `stress -c 2`. */
  conditions: Condition[];
  stressRuns: ToolRun[];
}

function report(bench: Bench, results: Results): string {
  const { runs, idle, list } = results;
  const n = bench.options.runs;
  const speeds = (tool: ToolId): number[] => runs.filter((r) => r.tool === tool).map(mbps);
  const reference = median(speeds('cli-backup'));
  const loads = (tool: ToolId): LoadResult[] =>
    runs.filter((r) => r.tool === tool).flatMap((r) => (r.load ? [r.load] : []));
  const worst = (tool: ToolId, f: (l: LoadResult) => number): number => maxOf(loads(tool).map(f));

  const rows: string[][] = [];
  for (const tool of TOOLS) {
    const speed = median(speeds(tool));
    const ratio = speed / reference;
    let ratioText = `${fixed(ratio, 2)}×`;
    let met = '—';
    if (tool === 'service') {
      ratioText += ` (target ≥ ${fixed(TARGETS.throughputRatio, 2)}×)`;
      met = verdict(ratio >= TARGETS.throughputRatio);
    } else if (tool === 'cli-backup') {
      ratioText += ' (reference)';
    }
    rows.push([`${TOOL_LABELS[tool]}: throughput, median of ${n}`, fixed(speed, 0), 'MB/s', ratioText, met]);
  }
  for (const tool of WORKER_TOOLS) {
    const phases = runs.flatMap((r) => (r.tool === tool && r.phases ? [{ ...r.phases, bytes: r.bytes }] : []));
    const copySpeed = median(phases.map((p) => mbps({ bytes: p.bytes, ms: p.copyMs })));
    const copyMs = median(phases.map((p) => p.copyMs));
    const workerMs = median(phases.map((p) => p.workerMs));
    const checkMs = median(phases.flatMap((p) => (p.checkMs === undefined ? [] : [p.checkMs])));
    const hashMs = median(phases.flatMap((p) => (p.hashMs === undefined ? [] : [p.hashMs])));
    const methods = [...new Set(runs.filter((r) => r.tool === tool).map((r) => r.method ?? '?'))].join(', ');
    rows.push(
      Number.isFinite(checkMs)
        ? [
            `\`${tool}\` phases, median of ${n}: copy${tool === 'worker' ? ' (sha256 on the way)' : ''} / ` +
              'quick_check ∥ fsync ∥ sha256 / whole job',
            `${fixed(copyMs, 0)} / ${fixed(checkMs, 0)} / ${fixed(workerMs, 0)}`,
            'ms',
            `copy alone ${fixed(copySpeed, 0)} MB/s = ${fixed(copySpeed / reference, 2)}×; method: ${methods}`,
            '(info)',
          ]
        : [
            `\`${tool}\` phases, median of ${n}: copy / journal switch + quick_check + fsync / sha256 / whole job`,
            `${fixed(copyMs, 0)} / ${fixed(workerMs - copyMs - hashMs, 0)} / ${fixed(hashMs, 0)} / ${fixed(workerMs, 0)}`,
            'ms',
            `copy alone ${fixed(copySpeed, 0)} MB/s = ${fixed(copySpeed / reference, 2)}×`,
            '(info)',
          ],
    );
  }

  const during = `during service backup under write load, worst of ${n}`;
  const loopP99 = worst('service-load', (l) => l.loopP99Ms);
  const loopMax = worst('service-load', (l) => l.loopMaxMs);
  const dbP99 = worst('service-load', (l) => percentile(l.db.samples, 99));
  const dbMax = worst('service-load', (l) => maxOf(l.db.samples));
  const httpP99 = worst('service-load', (l) => percentile(l.http.samples, 99));
  const httpMax = worst('service-load', (l) => maxOf(l.http.samples));
  const rssAll = [...loads('service'), ...loads('service-load')].map((l) => l.rssGrowthBytes / MIB);
  const rssMiB = maxOf(rssAll);
  const rssAnonMiB = maxOf([...loads('service'), ...loads('service-load')].map((l) => l.rssAnonGrowthBytes / MIB));
  const failed = loads('service-load').reduce((sum, l) => sum + l.db.errors + l.http.errors, 0);
  const healthP99 = worst('service', (l) => percentile(l.health.samples, 99));
  const healthMax = worst('service', (l) => maxOf(l.health.samples));
  const healthLoadP99 = worst('service-load', (l) => percentile(l.health.samples, 99));
  const healthLoadMax = worst('service-load', (l) => maxOf(l.health.samples));
  const healthFailed = [...loads('service'), ...loads('service-load')].reduce((sum, l) => sum + l.health.errors, 0);
  const childRss = maxOf(runs.flatMap((r) => (r.childPeakRssBytes === undefined ? [] : [r.childPeakRssBytes / MIB])));
  const backupMs = median(runs.filter((r) => r.tool === 'service').map((r) => r.ms));
  const restoreFactor = results.restore.ms / backupMs;
  const listMedian = median(list.serviceMs);
  const listMax = maxOf(list.serviceMs);
  rows.push(
    [
      `HTTP \`GET /api/health\` every ${HEALTH_INTERVAL_MS} ms from another process: p99 during service backup, worst of ${n}`,
      fixed(healthP99),
      'ms',
      ...target(healthP99, TARGETS.healthP99Ms, 'ms'),
    ],
    [`HTTP health: max during service backup, worst of ${n}`, fixed(healthMax), 'ms', '(info)', '—'],
    [
      `HTTP health p99 / max ${during}`,
      pair(healthLoadP99, healthLoadMax),
      'ms',
      `(info; ≤ ${TARGETS.healthP99Ms} ms p99 ${healthLoadP99 <= TARGETS.healthP99Ms ? 'met' : 'missed'} here too)`,
      '—',
    ],
    [
      `Failed health pings during service backups (all ${2 * n} runs)`,
      String(healthFailed),
      'count',
      '0',
      verdict(healthFailed === 0),
    ],
    [`Event-loop delay p99 ${during}`, fixed(loopP99), 'ms', ...target(loopP99, TARGETS.loopP99Ms, 'ms')],
    [`Event-loop delay max ${during}`, fixed(loopMax), 'ms', ...target(loopMax, TARGETS.loopMaxMs, 'ms')],
    [
      `Event-loop delay p99 / max during service backup without writes, worst of ${n}`,
      pair(
        worst('service', (l) => l.loopP99Ms),
        worst('service', (l) => l.loopMaxMs),
      ),
      'ms',
      '(info)',
      '—',
    ],
    [
      `Small write, TypeORM \`DataSource.query\` INSERT: p99 ${during}`,
      fixed(dbP99),
      'ms',
      ...target(dbP99, TARGETS.writeP99Ms, 'ms'),
    ],
    [`Small write, TypeORM INSERT: max ${during}`, fixed(dbMax), 'ms', '(info)', '—'],
    [
      `Small write, HTTP \`PUT /api/settings\`: p99 ${during}`,
      fixed(httpP99),
      'ms',
      ...target(httpP99, TARGETS.writeP99Ms, 'ms'),
    ],
    [`Small write, HTTP PUT: max ${during}`, fixed(httpMax), 'ms', '(info)', '—'],
    [`Failed small writes during service backups (all ${n} runs)`, String(failed), 'count', '0', verdict(failed === 0)],
    [
      `RSS growth during service backup, worst of ${2 * n}`,
      fixed(rssMiB),
      'MiB',
      ...target(rssMiB, TARGETS.rssMiB, 'MiB'),
    ],
    [
      'Peak RSS of the snapshot child process (its own process, not the service; mapped file pages count), max',
      fixed(childRss),
      'MiB',
      '(info)',
      '—',
    ],
    [
      `RSS growth, anonymous memory only (no file-backed pages), worst of ${2 * n}`,
      fixed(rssAnonMiB),
      'MiB',
      '(info: what the service allocated)',
      '—',
    ],
    [
      `\`BackupsService.list()\` right after ${LIST_FILES} unknown backup files appeared (first call)`,
      fixed(list.firstMs),
      'ms',
      Number.isFinite(list.settleMs)
        ? `(info; its background work settled after ${fixed(list.settleMs / 1000)} s)`
        : '(info)',
      '—',
    ],
    [
      `\`BackupsService.list()\` with ${LIST_FILES} backups, settled, median of ${LIST_REPEATS}`,
      fixed(listMedian),
      'ms',
      ...target(listMedian, TARGETS.listMs, 'ms'),
    ],
    [
      `\`BackupsService.list()\` with ${LIST_FILES} backups, settled, max of ${LIST_REPEATS}`,
      fixed(listMax),
      'ms',
      `(info; ≤ ${TARGETS.listMs} ms ${listMax <= TARGETS.listMs ? 'met' : 'missed'})`,
      '—',
    ],
    [
      `\`GET /api/backup\` over HTTP with ${LIST_FILES} backups, median / max of ${LIST_REPEATS}`,
      pair(median(list.httpMs), maxOf(list.httpMs)),
      'ms',
      '(info)',
      '—',
    ],
    [
      'Online restore of the database (`POST /api/backup/restore`: verify + safety backup + copy-in + migrations)',
      fixed(results.restore.ms, 0),
      'ms',
      `${fixed(restoreFactor, 2)}× the service backup (target ≤ ${TARGETS.restoreFactor}×)`,
      verdict(restoreFactor <= TARGETS.restoreFactor),
    ],
    [
      'During the restore: event-loop p99 / max; health p99 / max (503 while restoring counts as failed)',
      `${pair(results.restore.load.loopP99Ms, results.restore.load.loopMaxMs)}; ` +
        `${pair(percentile(results.restore.load.health.samples, 99), maxOf(results.restore.load.health.samples))}`,
      'ms',
      `(info; ${results.restore.load.health.errors} failed pings)`,
      '—',
    ],
    [
      `Idle baseline, same write load, no backup (${BASELINE_MS / 1000} s): event-loop delay p99 / max`,
      pair(idle.loopP99Ms, idle.loopMaxMs),
      'ms',
      '(info)',
      '—',
    ],
    [
      'Idle baseline: TypeORM INSERT p99 / max',
      pair(percentile(idle.db.samples, 99), maxOf(idle.db.samples)),
      'ms',
      '(info)',
      '—',
    ],
    [
      'Idle baseline: HTTP PUT p99 / max',
      pair(percentile(idle.http.samples, 99), maxOf(idle.http.samples)),
      'ms',
      '(info)',
      '—',
    ],
    [
      'Idle baseline: HTTP health p99 / max',
      pair(percentile(idle.health.samples, 99), maxOf(idle.health.samples)),
      'ms',
      '(info)',
      '—',
    ],
    [
      `Quiet baseline, no backup and no writes (${BASELINE_MS / 1000} s): event-loop p99 / max; health p99 / max`,
      `${pair(results.quiet.loopP99Ms, results.quiet.loopMaxMs)}; ` +
        pair(percentile(results.quiet.health.samples, 99), maxOf(results.quiet.health.samples)),
      'ms',
      '(info: the floor this machine allowed)',
      '—',
    ],
  );
  for (const tool of WORKER_TOOLS) {
    rows.push([
      `\`${tool}\` (no write load): event-loop p99 / max; health p99 / max, worst of ${n}`,
      `${pair(
        worst(tool, (l) => l.loopP99Ms),
        worst(tool, (l) => l.loopMaxMs),
      )}; ${pair(
        worst(tool, (l) => percentile(l.health.samples, 99)),
        worst(tool, (l) => maxOf(l.health.samples)),
      )}`,
      'ms',
      '(info: child process vs worker thread)',
      '—',
    ]);
  }

  const detailRows = [...runs, ...results.stressRuns].map((r, i) => {
    const l = r.load;
    const writes = (x: LatencySamples): string =>
      x.samples.length === 0
        ? ''
        : `${pair(percentile(x.samples, 99), maxOf(x.samples))} @${fixed(x.slowestAtMs, 0)} (n=${x.samples.length})`;
    return [
      `${i >= runs.length ? 'stress ' : ''}${r.round}`,
      r.tool,
      fixed(r.ms, 0),
      fixed(mbps(r), 0),
      l ? pair(l.loopP99Ms, l.loopMaxMs) : '',
      l
        ? `${fixed(l.stall.longestMs)} @${fixed(l.stall.longestAtMs, 0)}; ${fixed(l.stall.gcMaxMs)} ${l.stall.gcMaxKind}`
        : '',
      l ? writes(l.db) : '',
      l ? writes(l.http) : '',
      l ? writes(l.health) : '',
      l ? fixed(l.rssGrowthBytes / MIB) : '',
      r.reportedMs !== undefined
        ? `reported ${r.reportedMs}`
        : r.phases
          ? `copy ${fixed(r.phases.copyMs, 0)}` +
            (r.phases.checkMs === undefined ? '' : `, checks ${fixed(r.phases.checkMs, 0)}`) +
            (r.phases.hashMs === undefined ? '' : `, sha256 ${fixed(r.phases.hashMs, 0)}`) +
            `, job ${fixed(r.phases.workerMs, 0)}; ${r.method ?? ''}`
          : '',
    ];
  });
  const firstError = loads('service-load')
    .flatMap((l) => [l.db.firstError, l.http.firstError])
    .find((e) => e !== undefined);

  return [
    `## Backup bench (--size ${bench.options.sizeMiB} MiB)`,
    '',
    ...results.machine,
    `- Load average at end: ${results.loadAtEnd.map((x) => x.toFixed(2)).join(' / ')}`,
    '',
    markdownTable(['Tool / measure', 'Value', 'Unit', 'Ratio / target', 'Met?'], rows),
    '',
    ...(results.conditions.length > 1
      ? [
          'Quiet and beside `stress -c 2`, side by side (same run, same database; targets: verified backup ≥ ' +
            `${TARGETS.throughputRatio}× quiet and ≥ ${TARGETS.stressThroughputRatio}× beside stress; health p99 ≤ ` +
            `${TARGETS.healthP99Ms} / ${TARGETS.stressHealthP99Ms} ms, max ≤ ${TARGETS.healthMaxMs} ms):`,
          '',
          sideBySide(results.conditions, TOOL_LABELS, {
            ratio: { quiet: TARGETS.throughputRatio, 'stress -c 2': TARGETS.stressThroughputRatio },
            healthP99: { quiet: TARGETS.healthP99Ms, 'stress -c 2': TARGETS.stressHealthP99Ms },
            healthMax: TARGETS.healthMaxMs,
          }),
          '',
        ]
      : []),
    'How it was measured:',
    `- Each tool ran ${n} times, interleaved in a rotating order; throughput is the median (MB = 10^6 bytes; source ` +
      'file size ÷ wall time; the CLI tools include process start-up). Untimed before every run: ' +
      '`PRAGMA wal_checkpoint(TRUNCATE)` through the app, `sync`, and a warm-up read `cat db > /dev/null`, so every ' +
      'tool starts from the same quiesced file and a warm page cache (it cannot be dropped without root): these are ' +
      "warm-cache numbers. Every copy goes to the app's backups folder and is deleted after its run.",
    '- Service time = wall time of `BackupsService.create()`, all of it: start of the snapshot child process, the ' +
      'copy (the backup API, then journal_mode=DELETE), then quick_check, ' +
      'fsync (and sha256 after a backup-API copy) side by side, hard-link publish, directory fsync, manifest and ' +
      'audit rows, retention. `sqlite3 .backup` and `VACUUM INTO` fdatasync their copy (checked with strace); `cp` ' +
      'does not. `worker*` rows: `runSnapshotWorker` alone with the options named, watched like a service run.',
    `- Health: another child process calls \`GET /api/health\` ${HEALTH_INTERVAL_MS} ms after each answer, during ` +
      'every watched run (service, worker, restore) and the idle baseline; the latency is what that client sees.',
    `- Write load (\`service-load\` runs and the idle baseline): two loops, each one small write ${WRITE_INTERVAL_MS} ms ` +
      "after the previous one completed: an INSERT into audit_log through the app's TypeORM DataSource (in this " +
      "process, on the app's main thread), and `PUT /api/settings` with the API key over HTTP to the listening app " +
      "from a separate child process (so the latency includes HTTP and the app's whole request pipeline, and the " +
      "client's work is not on the app's event loop). Sequential loops: a stall is one long sample, and with fewer " +
      'than 100 samples p99 is the max.',
    "- On the app's main thread (this process) during every service run: `monitorEventLoopDelay({ resolution: 1 })` " +
      '(each value is a whole timer interval, so ~1 ms means no delay) and RSS (this process: main thread and any ' +
      'worker thread; the snapshot child process reports its own peak apart) ' +
      'sampled every 5 ms, max minus before. The rows above give the worst run; the table below gives each run.',
    `- Listing: ${LIST_FILES} files of 1 KiB named like real backups (distinct timestamps) put in the app's backups ` +
      'folder. The service has not seen them, so its first list() is reported apart; the bench then polls list() ' +
      'until every entry has a sha256 (when entries carry one), i.e. the state of backups the service made itself, ' +
      `and times ${LIST_REPEATS} more calls.`,
    ...(firstError !== undefined ? [`- First failed write: ${firstError}`] : []),
    '',
    'Per run:',
    '',
    markdownTable(
      [
        'Round',
        'Tool',
        'ms',
        'MB/s',
        'loop p99 / max ms',
        'longest stall @start; GC max, ms',
        'INSERT p99 / max @start ms',
        'HTTP PUT p99 / max @start ms',
        'health p99 / max @start ms',
        'RSS +MiB',
        'service / worker ms',
      ],
      detailRows,
    ),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  let options: BenchOptions;
  let folder: WorkFolder;
  try {
    options = parseArgs(process.argv.slice(2));
    if (options.offsite) {
      return await runOffsiteBench(options);
    }
    if (options.replication) {
      return await runReplicationBench(options);
    }
    if (options.pitr) {
      return options.endToEnd ? await runPitrEndToEnd(options) : await runPitrBench(options);
    }
    if (options.memory) {
      return await runMemoryBench(options);
    }
    if (options.preemption) {
      return await runPreemptionBench(options);
    }
    folder = prepareFolder(options);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`${error.message ? `${error.message}\n\n` : ''}${USAGE}\n`);
      return error.message ? 2 : 0;
    }
    throw error;
  }
  const work = folder;
  const keep = options.keep;
  let cleaned = false;
  const cleanup = (): void => {
    if (cleaned) {
      return;
    }
    cleaned = true;
    removeBuild();
    if (keep) {
      progress(`kept ${work.dir}`);
    } else {
      removeFolder(work);
    }
  };
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  // Nest exits the process itself when the app cannot start (abortOnError): clean up then too.
  process.once('exit', cleanup);

  let bench: Bench | undefined;
  try {
    const targetBytes = Math.round(options.sizeMiB * MIB);
    checkFreeSpace(work.dir, targetBytes);
    await mustRun('sqlite3', ['--version']);
    const dbPath = path.join(work.dir, 'mission-control.db');

    progress(options.fromSource ? 'loading the app from src/ (ts-node)' : 'compiling src/ with tsc into bench/.build/');
    const modules = await loadApp(options.fromSource);
    await buildDatabase(modules, dbPath, targetBytes);

    progress('starting the app on the database (app.listen on 127.0.0.1) and the HTTP writer process');
    bench = await startBench(options, modules, dbPath);
    const machine = await machineLines(bench, work.dir);

    progress(`warm-up (${WARM_UP_MS} ms of the write load, untimed), then idle baseline (${BASELINE_MS} ms)`);
    await prepareRun(bench);
    await measureIdle(bench, WARM_UP_MS);
    await prepareRun(bench);
    const idle = await measureIdle(bench, BASELINE_MS);
    const quiet = await measureIdle(bench, BASELINE_MS, false);

    if (options.tools !== undefined) {
      const wanted = new Set([...options.tools, 'cli-backup']);
      const unknown = [...wanted].filter((t) => !(ALL_TOOLS as readonly string[]).includes(t));
      if (unknown.length > 0) {
        throw new UsageError(`Unknown tool(s) in --tools: ${unknown.join(', ')}`);
      }
      TOOLS = ALL_TOOLS.filter((t) => wanted.has(t));
      WORKER_TOOLS = ALL_WORKER_TOOLS.filter((t) => wanted.has(t));
    }
    const withStress = options.stress && (await stressAvailable());
    if (options.stress && !withStress) {
      progress('stress is not installed (Debian: apt-get install stress): quiet rounds only');
    }

    progress(`timed runs: ${options.runs} rounds × ${TOOLS.length} tools, rotating order`);
    const quietStart = os.loadavg()[0];
    const runs = await timedRuns(bench);
    const conditions: Condition[] = [
      {
        label: 'quiet',
        runs: runs.map(compared),
        loadStart: quietStart,
        loadEnd: os.loadavg()[0],
        idleHealth: quiet.health,
      },
    ];
    let stressRuns: ToolRun[] = [];
    if (withStress) {
      let stress: StressHandle | undefined;
      try {
        stress = await startStress(2);
        const stressStart = os.loadavg()[0];
        const stressIdle = await measureIdle(bench, BASELINE_MS, false);
        progress(`timed runs beside stress -c 2: ${options.runs} rounds × ${TOOLS.length} tools`);
        stressRuns = await timedRuns(bench, 'stress ');
        conditions.push({
          label: 'stress -c 2',
          runs: stressRuns.map(compared),
          loadStart: stressStart,
          loadEnd: os.loadavg()[0],
          idleHealth: stressIdle.health,
        });
      } finally {
        if (stress) {
          await stopStress(stress);
        }
      }
    }

    let restore: RestoreRun = { ms: NaN, load: quiet };
    let list: ListResult = { firstMs: NaN, settleMs: NaN, serviceMs: [], httpMs: [], count: 0 };
    if (!options.backupsOnly) {
      progress('online restore over HTTP');
      restore = await measureRestore(bench);
      progress(`  restore: ${fixed(restore.ms, 0)} ms`);

      progress(`listing ${LIST_FILES} backups`);
      list = await measureList(bench);
    }

    const loadAtEnd = os.loadavg();
    process.stdout.write(
      `${report(bench, { machine, idle, quiet, runs, list, restore, loadAtEnd, conditions, stressRuns })}\n`,
    );
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`${error.message}\n`);
      return 2;
    }
    throw error;
  } finally {
    if (bench) {
      await bench.httpWriter.close();
      await bench.healthPinger.close();
      await bench.app.close();
    }
    cleanup();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
