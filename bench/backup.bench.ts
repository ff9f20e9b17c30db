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
import { type AppModules, HttpWriterProcess, loadApp, removeBuild } from './bench-app';
import { checkpointTruncate, fillDatabase } from './bench-db';
import { runOffsiteBench } from './offsite.bench';
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
const WARM_UP_MS = 1500;
const BASELINE_MS = 3000;
const LIST_FILES = 1000;
const LIST_REPEATS = 5;
const LIST_SETTLE_TIMEOUT_MS = 120_000;
const ADMIN = { user: 'bench-admin', pass: 'bench-password-123' };

const TARGETS = {
  throughputRatio: 0.9,
  loopP99Ms: 20,
  loopMaxMs: 50,
  writeP99Ms: 50,
  listMs: 50,
  rssMiB: 64,
};

const TOOLS = ['service', 'service-load', 'worker', 'cli-backup', 'vacuum-into', 'cp'] as const;
type ToolId = (typeof TOOLS)[number];
type CliToolId = Exclude<ToolId, 'service' | 'service-load' | 'worker'>;

const TOOL_LABELS: Record<ToolId, string> = {
  service: 'This service: `BackupsService.create()`, no other load',
  'service-load': 'This service: `BackupsService.create()` under the write load below',
  worker: "The service's snapshot worker alone (`runSnapshotWorker`: no publish, audit or retention)",
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
}

interface WorkerPhases {
  /** The online-backup page copy. */
  copyMs: number;
  /** Everything in the worker: the copy, then journal switch, quick_check, fsync (and sha256 when the worker has it). */
  workerMs: number;
  /** The sha256 of the copy, when this version of the worker computes one. */
  hashMs?: number;
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
  rssGrowthBytes: number;
  rssAnonGrowthBytes: number;
  stall: StallReport;
}

/** Watches the app while `work` runs: event loop and RSS always, and with `writes` the two small-write loops. */
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
  const [dbResult, httpResult] = writes
    ? await Promise.all([db.stop(), bench.httpWriter.end()])
    : [noSamples(), noSamples()];
  return {
    value,
    ms,
    load: {
      loopP99Ms: loop.percentile(99) / 1e6,
      loopMaxMs: loop.max / 1e6,
      db: dbResult,
      http: httpResult,
      rssGrowthBytes,
      rssAnonGrowthBytes,
      stall: stallReport,
    },
  };
}

async function measureIdle(bench: Bench, ms: number): Promise<LoadResult> {
  const { load } = await underObservation(bench, true, () => sleep(ms));
  const failed = load.db.firstError ?? load.http.firstError;
  if (failed !== undefined) {
    throw new Error(`small writes failed without a backup running: ${failed}`);
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

async function timedRuns(bench: Bench): Promise<ToolRun[]> {
  const runs: ToolRun[] = [];
  for (let round = 1; round <= bench.options.runs; round++) {
    // Rotate the order each round so no tool is always first (or always right after another one's writes).
    const order = TOOLS.map((_, i) => TOOLS[(i + round - 1) % TOOLS.length]);
    for (const tool of order) {
      const bytes = await prepareRun(bench);
      const run =
        tool === 'service' || tool === 'service-load'
          ? await runService(bench, tool, round, bytes)
          : tool === 'worker'
            ? await runWorker(bench, round, bytes)
            : await runCli(bench, tool, round, bytes);
      progress(`  round ${round} ${tool.padEnd(12)} ${fixed(mbps(run), 0).padStart(5)} MB/s (${fixed(run.ms, 0)} ms)`);
      runs.push(run);
    }
  }
  return runs;
}

function mbps(run: { bytes: number; ms: number }): number {
  return run.bytes / MB / (run.ms / 1000);
}

/** The service's worker on its own, with the service's default options, into a file of the backups folder. */
async function runWorker(bench: Bench, round: number, bytes: number): Promise<ToolRun> {
  const dest = path.join(bench.backupsDir, 'bench-worker.db');
  removeWithSiblings(dest);
  const started = performance.now();
  const result = await bench.modules.runSnapshotWorker(bench.dbPath, dest);
  const ms = performance.now() - started;
  removeWithSiblings(dest);
  const hashMs = (result as { hashMs?: unknown }).hashMs;
  return {
    tool: 'worker',
    round,
    bytes,
    ms,
    phases: {
      copyMs: result.copyMs,
      workerMs: result.totalMs,
      hashMs: typeof hashMs === 'number' ? hashMs : undefined,
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
  runs: ToolRun[];
  list: ListResult;
  loadAtEnd: number[];
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
  const phases = runs.flatMap((r) => (r.phases ? [{ ...r.phases, bytes: r.bytes }] : []));
  const copySpeed = median(phases.map((p) => mbps({ bytes: p.bytes, ms: p.copyMs })));
  const hashes = phases.flatMap((p) => (p.hashMs === undefined ? [] : [p.hashMs]));
  const workerMs = median(phases.map((p) => p.workerMs));
  const copyMs = median(phases.map((p) => p.copyMs));
  const hashMs = median(hashes);
  rows.push([
    `Worker phases, median of ${n}: page copy / journal switch + quick_check + fsync${hashes.length > 0 ? ' / sha256' : ''}` +
      ' / whole worker',
    hashes.length > 0
      ? `${fixed(copyMs, 0)} / ${fixed(workerMs - copyMs - hashMs, 0)} / ${fixed(hashMs, 0)} / ${fixed(workerMs, 0)}`
      : `${fixed(copyMs, 0)} / ${fixed(workerMs - copyMs, 0)} / ${fixed(workerMs, 0)}`,
    'ms',
    `page copy alone ${fixed(copySpeed, 0)} MB/s = ${fixed(copySpeed / reference, 2)}×`,
    '(info)',
  ]);

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
  const listMedian = median(list.serviceMs);
  const listMax = maxOf(list.serviceMs);
  rows.push(
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
  );

  const detailRows = runs.map((r) => {
    const l = r.load;
    const writes = (x: LatencySamples): string =>
      x.samples.length === 0
        ? ''
        : `${pair(percentile(x.samples, 99), maxOf(x.samples))} @${fixed(x.slowestAtMs, 0)} (n=${x.samples.length})`;
    return [
      String(r.round),
      r.tool,
      fixed(r.ms, 0),
      fixed(mbps(r), 0),
      l ? pair(l.loopP99Ms, l.loopMaxMs) : '',
      l ? `${fixed(l.stall.longestMs)} @${fixed(l.stall.longestAtMs, 0)}; ${fixed(l.stall.gcMaxMs)}` : '',
      l ? writes(l.db) : '',
      l ? writes(l.http) : '',
      l ? fixed(l.rssGrowthBytes / MIB) : '',
      r.reportedMs !== undefined
        ? `reported ${r.reportedMs}`
        : r.phases
          ? `copy ${fixed(r.phases.copyMs, 0)}` +
            (r.phases.hashMs === undefined ? '' : `, sha256 ${fixed(r.phases.hashMs, 0)}`) +
            `, worker ${fixed(r.phases.workerMs, 0)}`
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
    'How it was measured:',
    `- Each tool ran ${n} times, interleaved in a rotating order; throughput is the median (MB = 10^6 bytes; source ` +
      'file size ÷ wall time; the CLI tools include process start-up). Untimed before every run: ' +
      '`PRAGMA wal_checkpoint(TRUNCATE)` through the app, `sync`, and a warm-up read `cat db > /dev/null`, so every ' +
      'tool starts from the same quiesced file and a warm page cache (it cannot be dropped without root): these are ' +
      "warm-cache numbers. Every copy goes to the app's backups folder and is deleted after its run.",
    '- Service time = wall time of `BackupsService.create()`, all of it: worker start, one-step backup-API copy, ' +
      'journal_mode=DELETE, `quick_check`, fsync (and the sha256 of the copy, when the worker makes one), ' +
      'hard-link publish, directory fsync, manifest and audit rows, retention. ' +
      '`sqlite3 .backup` and `VACUUM INTO` fdatasync their copy (checked with strace); `cp` does not.',
    `- Write load (\`service-load\` runs and the idle baseline): two loops, each one small write ${WRITE_INTERVAL_MS} ms ` +
      "after the previous one completed: an INSERT into audit_log through the app's TypeORM DataSource (in this " +
      "process, on the app's main thread), and `PUT /api/settings` with the API key over HTTP to the listening app " +
      "from a separate child process (so the latency includes HTTP and the app's whole request pipeline, and the " +
      "client's work is not on the app's event loop). Sequential loops: a stall is one long sample, and with fewer " +
      'than 100 samples p99 is the max.',
    "- On the app's main thread (this process) during every service run: `monitorEventLoopDelay({ resolution: 1 })` " +
      '(each value is a whole timer interval, so ~1 ms means no delay) and RSS (main thread + snapshot worker) ' +
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

    progress(`timed runs: ${options.runs} rounds × ${TOOLS.length} tools, rotating order`);
    const runs = await timedRuns(bench);

    progress(`listing ${LIST_FILES} backups`);
    const list = await measureList(bench);

    const loadAtEnd = os.loadavg();
    process.stdout.write(`${report(bench, { machine, idle, runs, list, loadAtEnd })}\n`);
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
