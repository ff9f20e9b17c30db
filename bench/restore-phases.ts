/**
 * `npm run bench:restore -- [--size <MiB>] [--runs <n>] [--audit-rows <n>] [--base <compiled tree>] [--keep]`: where
 * an online restore's time goes, phase by phase, next to `BackupsService.create()` in the same run (issue #11:
 * restore ≤ 3× the backup), and the longest event-loop stall during each restore (issue #19; `--audit-rows` gives
 * the live database that many more audit rows, which every restore carries over). Never run by CI.
 *
 * Builds a database like `npm run bench` (app schema + random filler), starts the compiled app (no HTTP), then per
 * round, in a rotating order: one `create()`, and one restore of a fresh backup through `RecoveryService.restore`
 * (the route's own call). The phases are timed by wrapping the service's own methods from the outside; nothing in
 * src/ knows about this. Before every timed run the WAL is checkpointed, `sync` runs and the file is read once.
 *
 * `--base <dir>`: the tsc output of another tree (e.g. `tsc -p tsconfig.build.json --outDir <dir>` in a worktree of
 * main whose node_modules resolve), started beside this one on its own copy of the database and measured in the
 * same rounds, so that a change is only kept when it beats what it replaces under the same load.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Database } from 'better-sqlite3';
import { DataSource } from 'typeorm';
import { buildDir, loadApp, removeBuild } from './bench-app';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import Sqlite from 'better-sqlite3';
import { checkpointTruncate, fillDatabase } from './bench-db';
import { StallProbe } from './bench-probes';
import { fixed, markdownTable, median, MIB, mustRun, progress } from './bench-util';

import { instrument, type Phases } from './restore-instrument';

function args(): { sizeMiB: number; runs: number; auditRows: number; keep: boolean; base?: string } {
  const argv = process.argv.slice(2);
  const value = (flag: string, fallback: number): number => {
    const i = argv.indexOf(flag);
    return i >= 0 ? Number(argv[i + 1]) : fallback;
  };
  const base = argv.indexOf('--base');
  return {
    sizeMiB: value('--size', 256),
    runs: value('--runs', 3),
    auditRows: value('--audit-rows', 0),
    keep: argv.includes('--keep'),
    // Another compiled tree (tsc output of an earlier src/) to measure side by side, e.g. the main branch's.
    base: base >= 0 ? path.resolve(argv[base + 1]) : undefined,
  };
}

interface Variant {
  label: string;
  /** Compiled app (tsc output of src/). */
  root: string;
  phases: Phases[];
  creates: number[];
  loads: string[];
}

async function main(): Promise<void> {
  const options = args();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mc-restore-phases-'));
  try {
    progress('compiling src/ with tsc into bench/.build/');
    const modules = await loadApp(false);
    const variants: Variant[] = [{ label: 'this tree', root: buildDir(), phases: [], creates: [], loads: [] }];
    if (options.base) {
      variants.push({ label: `base (${options.base})`, root: options.base, phases: [], creates: [], loads: [] });
    }
    let current: Phases = {};
    for (const variant of variants) {
      instrument(variant.root, () => current);
    }
    const env = (dbPath: string): Record<string, string> => ({
      MISSION_CONTROL_DB_PATH: dbPath,
      AUTH_USER: 'bench-admin',
      AUTH_PASS: 'bench-password-123',
      API_KEY: randomBytes(16).toString('hex'),
      LOG_LEVEL: 'error',
    });
    const firstDb = path.join(dir, 'v0', 'mission-control.db');
    fs.mkdirSync(path.dirname(firstDb));
    progress('migrating');
    const boot = await modules.createApp(modules.loadConfig(env(firstDb)));
    boot.useLogger(['error', 'warn']);
    await boot.init();
    await boot.close();
    progress(`filling to ${options.sizeMiB} MiB`);
    fillDatabase(firstDb, Math.round(options.sizeMiB * MIB));
    if (options.auditRows > 0) {
      progress(`adding ${options.auditRows} audit rows`);
      addAuditRows(firstDb, options.auditRows);
    }
    const actor = { id: null, username: 'bench' };
    const running = [];
    for (const [i, variant] of variants.entries()) {
      const dbPath = path.join(dir, `v${i}`, 'mission-control.db');
      if (i > 0) {
        fs.mkdirSync(path.dirname(dbPath));
        // Before any app opens either file (cp: another process, so no descriptor of ours is ever closed on it).
        await mustRun('cp', [firstDb, dbPath]);
      }
      /* eslint-disable @typescript-eslint/no-require-imports -- the compiled modules of this variant, by path */
      const setup = require(path.join(variant.root, 'app.setup')) as { createApp: typeof modules.createApp };
      const configModule = require(path.join(variant.root, 'config', 'app-config')) as {
        loadConfig: typeof modules.loadConfig;
      };
      const backups = require(path.join(variant.root, 'backups', 'backups.service')) as {
        BackupsService: typeof modules.BackupsService;
      };
      const recovery = require(path.join(variant.root, 'recovery', 'restore.service')) as {
        RestoreService: new (...a: never[]) => { restore: (name: string, request: unknown) => Promise<unknown> };
      };
      /* eslint-enable @typescript-eslint/no-require-imports */
      const config = configModule.loadConfig(env(dbPath));
      const app = await setup.createApp(config);
      app.useLogger(['error', 'warn']);
      await app.init();
      const handle = (app.get(DataSource).driver as unknown as { databaseConnection: Database }).databaseConnection;
      running.push({
        variant,
        app,
        dbPath,
        backupsDir: config.backupsDir,
        service: app.get(backups.BackupsService),
        restorer: app.get(recovery.RestoreService),
        handle,
      });
    }
    type Running = (typeof running)[number];
    const prepare = async (r: Running): Promise<void> => {
      checkpointTruncate(r.handle);
      await mustRun('sync', []);
      await mustRun('cat', [r.dbPath], true);
    };
    const tasks = running.flatMap((r) => [
      { r, step: 'create' as const },
      { r, step: 'restore' as const },
    ]);
    for (let round = 1; round <= options.runs; round++) {
      const shift = (round - 1) % tasks.length;
      for (const { r, step } of [...tasks.slice(shift), ...tasks.slice(0, shift)]) {
        const { variant } = r;
        await prepare(r);
        if (step === 'create') {
          const started = performance.now();
          const made = await r.service.create({ actor, kind: 'manual' });
          variant.creates.push(performance.now() - started);
          fs.rmSync(path.join(r.backupsDir, made.name));
          progress(
            `  round ${round} ${variant.label} create ${fixed(variant.creates[variant.creates.length - 1], 0)} ms`,
          );
          continue;
        }
        const made = await r.service.create({ actor, kind: 'manual' });
        await prepare(r);
        current = {};
        const loop = monitorEventLoopDelay({ resolution: 10 });
        const stall = new StallProbe();
        loop.enable();
        stall.start();
        const started = performance.now();
        const answer = (await r.restorer.restore(made.name, { actor, meta: {} })) as { safety_backup: string };
        current.total = performance.now() - started;
        loop.disable();
        const stalled = stall.stop();
        current['event loop: longest stall (1 ms timer; not a phase)'] = stalled.longestMs;
        current['event loop: … began at (ms into the restore)'] = stalled.longestAtMs;
        current['event loop: longest main-thread GC pause'] = stalled.gcMaxMs;
        current['event loop: monitorEventLoopDelay max (not a phase)'] = loop.max / 1e6;
        const done = current;
        current = {};
        variant.phases.push(done);
        variant.loads.push(os.loadavg()[0].toFixed(2));
        progress(
          `  round ${round} ${variant.label} restore ${fixed(done.total, 0)} ms: ` +
            JSON.stringify(done, (_k, v: unknown) => (typeof v === 'number' ? Math.round(v) : v)),
        );
        fs.rmSync(path.join(r.backupsDir, made.name));
        fs.rmSync(path.join(r.backupsDir, answer.safety_backup));
      }
    }
    for (const r of running) {
      await r.app.close();
    }
    const out: string[] = [`${options.sizeMiB} MiB, ${options.runs} rounds, ${os.cpus().length} cores`];
    for (const variant of variants) {
      const createMs = median(variant.creates);
      const labels = [...new Set(variant.phases.flatMap((r) => Object.keys(r)))];
      const rows = labels.map((label) => {
        const values = variant.phases.map((r) => r[label] ?? 0);
        return [label, fixed(median(values), 0), values.map((v) => fixed(v, 0)).join(' / ')];
      });
      rows.push(['`create()`', fixed(createMs, 0), variant.creates.map((v) => fixed(v, 0)).join(' / ')]);
      const ratio = median(variant.phases.map((r) => r.total)) / createMs;
      out.push(
        `\n### ${variant.label}: restore / create() ${fixed(ratio, 2)}× (load after each restore: ` +
          `${variant.loads.join(', ')})\n`,
        markdownTable(['phase', 'median ms', 'runs ms'], rows),
      );
    }
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    removeBuild();
    if (!options.keep) {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}

/** Audit rows like the write load's, before any app opens the file. */
function addAuditRows(file: string, rows: number): void {
  const db = new Sqlite(file);
  try {
    const insert = db.prepare(
      "INSERT INTO audit_log (action, actor, target_type, target_id, detail, created_at) VALUES ('settings_update', " +
        "'bench', 'setting', 'bench_key', ?, ?)",
    );
    db.transaction(() => {
      for (let i = 0; i < rows; i++) {
        insert.run(JSON.stringify({ key: 'bench_key', value: `value-${i}` }), 1_764_000_000 + i);
      }
    }).immediate();
  } finally {
    db.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `restore-phases failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
