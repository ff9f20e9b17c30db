/**
 * `npm run bench -- --memory [--minutes <n>] [--clients <n>] [--idle <s>] [--variants a,b] [--size <MiB>]`: does
 * the app's memory come back after a burst of traffic? Never run by CI.
 *
 * One app process per variant (bench/memory-app.ts, the compiled app), each on its own copy of a database of
 * --size MiB, all under the same load at the same time: --clients loops in another process
 * (bench/memory-load.ts) send one request of a weighted mix after the other (health, listings, audit, settings
 * reads and writes, metrics, now and then a backup, a download or a failed login), the same request to every
 * variant. Every 5 s each app reports process.memoryUsage() and /proc/self/status (anonymous vs file-backed
 * resident memory). After --minutes the load stops and the apps sit idle for --idle seconds; the target is RSS at
 * the end within +128 MiB of RSS at the start. With --keep a heap snapshot of each app is written at the end
 * (never before: writing one grows the app's native memory).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildDir, loadApp, removeBuild } from './bench-app';
import { fillDatabase } from './bench-db';
import { type BenchOptions, fixed, markdownTable, MIB, mustRun, progress, sleep } from './bench-util';
import type { MemoryAppCommand, MemoryAppReply, MemorySample } from './memory-app';
import type { LoadCommand, LoadReply } from './memory-load';

const TARGET_MIB = 128;
const SAMPLE_EVERY_MS = 5000;
const LOAD_PROCESSES = 4;

/** Environment of each variant's app process, on top of the bench's own. */
const VARIANTS: Record<string, Record<string, string>> = {
  default: {},
  arena2: { MALLOC_ARENA_MAX: '2' },
  arena1: { MALLOC_ARENA_MAX: '1' },
  /** A fixed mmap threshold: glibc otherwise raises it after each large free, and big buffers then fragment the heap. */
  mmap128k: { MALLOC_MMAP_THRESHOLD_: '131072' },
  both: { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072' },
  /** `both` with a young generation of 2 MiB semi-spaces (V8's default is up to 16): shorter scavenges. */
  semi2: { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072', NODE_OPTIONS: '--max-semi-space-size=2' },
  /** Diagnosis only: a full collection at the end tells garbage not yet collected from memory really held. */
  gc: { NODE_OPTIONS: '--expose-gc' },
};

interface Running {
  name: string;
  child: ChildProcess;
  url: string;
  apiKey: string;
  samples: Array<{ at: number; phase: string; sample: MemorySample }>;
}

function tsChild(file: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  return fork(path.join(__dirname, file), args, {
    execArgv: ['-r', require.resolve('ts-node/register/transpile-only')],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env,
  });
}

function reply<T extends MemoryAppReply | LoadReply>(child: ChildProcess, type: T['type']): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: T): void => {
      if (message.type === type) {
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(message);
      }
    };
    const onExit = (code: number | null): void => reject(new Error(`child exited (${code}) before "${type}"`));
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

async function ask(app: Running, command: MemoryAppCommand, type: MemoryAppReply['type']): Promise<MemoryAppReply> {
  const answer = reply<MemoryAppReply>(app.child, type);
  app.child.send(command);
  return answer;
}

async function sampleAll(apps: Running[], started: number, phase: string): Promise<void> {
  for (const app of apps) {
    const answer = (await ask(app, { type: 'sample' }, 'sample')) as Extract<MemoryAppReply, { type: 'sample' }>;
    app.samples.push({ at: (performance.now() - started) / 1000, phase, sample: answer.sample });
  }
}

function mib(bytes: number): string {
  return fixed(bytes / MIB, 0);
}

/** The last sample before any diagnostic gc(). */
function lastIdle(app: Running): MemorySample {
  const before = app.samples.filter((s) => s.phase !== 'after gc');
  return before[before.length - 1].sample;
}

function breakdown(s: MemorySample): string {
  return (
    `${mib(s.rss)} (anon ${mib(s.rssAnon)}, file ${mib(s.rssFile)}; heap ${mib(s.heapUsed)}/${mib(s.heapTotal)}, ` +
    `external ${mib(s.external)}, arrayBuffers ${mib(s.arrayBuffers)}, V8 malloc ${mib(s.mallocedMemory)}; ` +
    `${s.threads} threads)`
  );
}

export async function runMemoryBench(options: BenchOptions): Promise<number> {
  const variants = options.variants ?? ['default', 'arena2'];
  const unknown = variants.filter((v) => VARIANTS[v] === undefined);
  if (unknown.length > 0) {
    throw new Error(`Unknown --variants: ${unknown.join(', ')} (known: ${Object.keys(VARIANTS).join(', ')})`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mc-memory-bench-'));
  const apps: Running[] = [];
  let load: ChildProcess[] = [];
  try {
    progress('compiling src/ with tsc into bench/.build/');
    const modules = await loadApp(false);
    const first = path.join(dir, 'v0', 'mission-control.db');
    fs.mkdirSync(path.dirname(first));
    const boot = await modules.createApp(
      modules.loadConfig({
        MISSION_CONTROL_DB_PATH: first,
        AUTH_USER: 'bench-admin',
        AUTH_PASS: 'bench-password-123',
        API_KEY: randomBytes(16).toString('hex'),
        LOG_LEVEL: 'error',
      }),
    );
    boot.useLogger(['error']);
    await boot.init();
    await boot.close();
    progress(`filling to ${options.sizeMiB} MiB`);
    fillDatabase(first, Math.round(options.sizeMiB * MIB));
    for (const [i, name] of variants.entries()) {
      const dbPath = path.join(dir, `v${i}`, 'mission-control.db');
      if (i > 0) {
        fs.mkdirSync(path.dirname(dbPath));
        await mustRun('cp', [first, dbPath]);
      }
      const apiKey = randomBytes(24).toString('hex');
      const child = tsChild('memory-app.ts', [buildDir(), dbPath, apiKey], { ...process.env, ...VARIANTS[name] });
      const ready = await reply<Extract<MemoryAppReply, { type: 'ready' }>>(child, 'ready');
      apps.push({ name, child, url: `http://127.0.0.1:${ready.port}`, apiKey, samples: [] });
      progress(`app "${name}" listening on ${ready.port} (pid ${child.pid})`);
    }
    load = Array.from({ length: LOAD_PROCESSES }, () => tsChild('memory-load.ts', [], process.env));
    await Promise.all(load.map((child) => reply<LoadReply>(child, 'ready')));
    const started = performance.now();
    await sleep(2000);
    await sampleAll(apps, started, 'start');
    const loadLoadAverage = os.loadavg()[0];
    progress(`${options.minutes} min of load: ${options.clients} clients over ${LOAD_PROCESSES} processes`);
    const perProcess = Math.ceil(options.clients / LOAD_PROCESSES);
    for (const [i, child] of load.entries()) {
      const clients = Math.min(perProcess, options.clients - i * perProcess);
      const targets = apps.map((app) => ({ url: app.url, apiKey: app.apiKey }));
      child.send({ type: 'start', targets, clients: Math.max(0, clients) } satisfies LoadCommand);
    }
    const loadEnd = performance.now() + options.minutes * 60_000;
    while (performance.now() < loadEnd) {
      await sleep(SAMPLE_EVERY_MS);
      await sampleAll(apps, started, 'load');
      const line = apps.map((a) => `${a.name} ${mib(a.samples[a.samples.length - 1].sample.rss)}`).join(', ');
      progress(
        `  ${fixed((performance.now() - started) / 1000, 0)} s: RSS MiB ${line}; load ${fixed(os.loadavg()[0], 2)}`,
      );
    }
    const done = await Promise.all(
      load.map((child) => {
        const answer = reply<Extract<LoadReply, { type: 'done' }>>(child, 'done');
        child.send({ type: 'stop' } satisfies LoadCommand);
        return answer;
      }),
    );
    const requests = done.reduce((sum, d) => sum + d.requests, 0);
    const statuses: Record<string, number> = {};
    for (const d of done) {
      for (const [status, n] of Object.entries(d.byStatus)) {
        statuses[status] = (statuses[status] ?? 0) + n;
      }
    }
    await sampleAll(apps, started, 'end of load');
    progress(`load stopped (${requests} requests); ${options.idleSeconds} s idle`);
    const idleEnd = performance.now() + options.idleSeconds * 1000;
    while (performance.now() < idleEnd) {
      await sleep(Math.min(SAMPLE_EVERY_MS, Math.max(0, idleEnd - performance.now())));
      await sampleAll(apps, started, 'idle');
    }
    // Writing a snapshot costs the app memory of its own, so it comes after the last sample, and only when kept.
    if (options.keep) {
      for (const app of apps) {
        await ask(app, { type: 'snapshot', file: path.join(dir, `${app.name}-end.heapsnapshot`) }, 'snapshot');
      }
    }
    for (const app of apps) {
      if (VARIANTS[app.name].NODE_OPTIONS?.includes('--expose-gc')) {
        await ask(app, { type: 'gc' }, 'gc');
        await sampleAll([app], started, 'after gc');
      }
    }
    const rows = apps.map((app) => {
      const start = app.samples[0].sample;
      const peak = Math.max(...app.samples.map((s) => s.sample.rss));
      const endOfLoad = app.samples.find((s) => s.phase === 'end of load')?.sample ?? start;
      const end = lastIdle(app);
      const growth = (end.rss - start.rss) / MIB;
      return [
        `${app.name}${
          Object.keys(VARIANTS[app.name]).length > 0
            ? ` (${Object.entries(VARIANTS[app.name])
                .map(([k, v]) => `${k}=${v}`)
                .join(' ')})`
            : ''
        }`,
        mib(start.rss),
        mib(peak),
        mib(endOfLoad.rss),
        mib(end.rss),
        `${fixed(growth, 0)}${growth <= TARGET_MIB ? ' ✓' : ` ✗ (≤ ${TARGET_MIB})`}`,
      ];
    });
    const details = apps.flatMap((app) => [
      `- ${app.name}, start: ${breakdown(app.samples[0].sample)}`,
      `- ${app.name}, end of load: ${breakdown(app.samples.find((s) => s.phase === 'end of load')?.sample ?? app.samples[0].sample)}`,
      `- ${app.name}, after ${options.idleSeconds} s idle: ${breakdown(lastIdle(app))}`,
      ...app.samples
        .filter((s) => s.phase === 'after gc')
        .map((s) => `- ${app.name}, after a full gc(): ${breakdown(s.sample)}`),
    ]);
    const report = [
      `## Memory bench: ${options.minutes} min of mixed load from ${options.clients} clients, then ${options.idleSeconds} s idle`,
      '',
      `- Date: ${new Date().toISOString()}; ${os.availableParallelism()} cores; Node ${process.version}; database ` +
        `${options.sizeMiB} MiB per app; load average at the start of the load ${fixed(loadLoadAverage, 2)}, at the end ` +
        `${os
          .loadavg()
          .map((x) => x.toFixed(2))
          .join(' / ')}`,
      `- ${requests} requests per app (${Object.entries(statuses)
        .map(([status, n]) => `${status}: ${n}`)
        .join(', ')}); every app got the same requests at the same time`,
      '',
      markdownTable(
        ['App', 'RSS start MiB', 'peak', 'end of load', `after ${options.idleSeconds} s idle`, 'growth MiB'],
        rows,
      ),
      '',
      'Breakdown (MiB):',
      ...details,
      '',
      `Heap snapshots: ${options.keep ? dir : '(removed; --keep keeps them)'}`,
    ].join('\n');
    process.stdout.write(`${report}\n`);
    return 0;
  } finally {
    for (const child of load) {
      child.kill();
    }
    for (const app of apps) {
      app.child.kill();
    }
    removeBuild();
    if (!options.keep) {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}
