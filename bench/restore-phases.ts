/**
 * `npm run bench:restore -- [--size <MiB>] [--runs <n>] [--base <compiled tree>] [--keep]`: where an online
 * restore's time goes, phase by phase, next to `BackupsService.create()` in the same run (issue #11: restore ≤ 3×
 * the backup). Never run by CI.
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
import { checkpointTruncate, fillDatabase } from './bench-db';
import { fixed, markdownTable, median, MIB, mustRun, progress } from './bench-util';

type Phases = Record<string, number>;

function args(): { sizeMiB: number; runs: number; keep: boolean } {
  const argv = process.argv.slice(2);
  const value = (flag: string, fallback: number): number => {
    const i = argv.indexOf(flag);
    return i >= 0 ? Number(argv[i + 1]) : fallback;
  };
  return { sizeMiB: value('--size', 256), runs: value('--runs', 3), keep: argv.includes('--keep') };
}

/** Wraps `target[key]` (a function) so that each call's wall time is added to `phases[label]`. */
function timeMethod(target: Record<string, unknown>, key: string, label: string, phases: () => Phases): void {
  const original = target[key] as (...a: unknown[]) => unknown;
  target[key] = function (this: unknown, ...a: unknown[]): unknown {
    const started = performance.now();
    const add = (): void => {
      const p = phases();
      p[label] = (p[label] ?? 0) + performance.now() - started;
    };
    const result = original.apply(this, a);
    if (result instanceof Promise) {
      return result.finally(add);
    }
    add();
    return result;
  };
}

async function main(): Promise<void> {
  const options = args();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mc-restore-phases-'));
  try {
    progress('compiling src/ with tsc into bench/.build/');
    const modules = await loadApp(false);
    const root = buildDir();
    /* eslint-disable @typescript-eslint/no-require-imports -- the compiled modules of this run, by path */
    const files = require(path.join(root, 'backups', 'backup-files')) as { BackupFiles: { prototype: object } };
    const snapshot = require(path.join(root, 'backups', 'snapshot')) as Record<string, unknown>;
    const state = require(path.join(root, 'backups', 'restore-state')) as Record<string, unknown>;
    const recovery = require(path.join(root, 'backups', 'recovery.service')) as {
      RecoveryService: new (...a: never[]) => { restore: (name: string, request: unknown) => Promise<unknown> };
    };
    /* eslint-enable @typescript-eslint/no-require-imports */
    let current: Phases = {};
    const phases = (): Phases => current;
    const proto = files.BackupFiles.prototype as Record<string, unknown>;
    timeMethod(proto, 'inspect', 'verify (inspect: integrity_check + sha256)', phases);
    timeMethod(proto, 'hash', 'verify: sha256 beside', phases);
    timeMethod(proto, 'snapshot', 'safety snapshot', phases);
    timeMethod(snapshot, 'runProbeWorker', 'probe quick_check', phases);
    timeMethod(state, 'finishRestore', 'finishing txn', phases);
    timeMethod(state, 'readLiveState', 'readLiveState', phases);
    for (const key of ['restoreInto', 'restoreTempInto']) {
      const original = proto[key] as (name: string, live: string, o?: Record<string, unknown>) => Promise<unknown>;
      proto[key] = async function (this: unknown, name: string, live: string, o: Record<string, unknown> = {}) {
        const started = performance.now();
        let lockedAt = NaN;
        let lockedEnd = NaN;
        const whileLocked = o.whileLocked as (() => Promise<void>) | undefined;
        const wrapped = whileLocked
          ? {
              ...o,
              whileLocked: async (): Promise<void> => {
                lockedAt = performance.now();
                try {
                  await whileLocked();
                } finally {
                  lockedEnd = performance.now();
                }
              },
            }
          : o;
        const result = (await original.call(this, name, live, wrapped)) as { copyMs: number };
        const end = performance.now();
        const p = phases();
        if (whileLocked) {
          p['worker start + lock wait'] = lockedAt - started;
          p['copy-in (backup API into the WAL)'] = result.copyMs;
          p['after copy (checkpoint, worker exit)'] = end - lockedEnd - result.copyMs;
        }
        return result;
      };
    }

    const dbPath = path.join(dir, 'mission-control.db');
    const apiKey = randomBytes(16).toString('hex');
    const env = {
      MISSION_CONTROL_DB_PATH: dbPath,
      AUTH_USER: 'bench-admin',
      AUTH_PASS: 'bench-password-123',
      API_KEY: apiKey,
      LOG_LEVEL: 'error',
    };
    progress('migrating');
    const boot = await modules.createApp(modules.loadConfig(env));
    boot.useLogger(['error', 'warn']);
    await boot.init();
    await boot.close();
    progress(`filling to ${options.sizeMiB} MiB`);
    fillDatabase(dbPath, Math.round(options.sizeMiB * MIB));
    const config = modules.loadConfig(env);
    const app = await modules.createApp(config);
    app.useLogger(['error', 'warn']);
    await app.init();
    const service = app.get(modules.BackupsService);
    const restorer = app.get(recovery.RecoveryService);
    const handle = (app.get(DataSource).driver as unknown as { databaseConnection: Database }).databaseConnection;
    const prepare = async (): Promise<void> => {
      checkpointTruncate(handle);
      await mustRun('sync', []);
      await mustRun('cat', [dbPath], true);
    };
    const actor = { id: null, username: 'bench' };
    const creates: number[] = [];
    const restores: Phases[] = [];
    const loads: string[] = [];
    for (let round = 1; round <= options.runs; round++) {
      const order = round % 2 === 1 ? ['create', 'restore'] : ['restore', 'create'];
      for (const step of order) {
        await prepare();
        if (step === 'create') {
          const started = performance.now();
          const made = await service.create({ actor, kind: 'manual' });
          creates.push(performance.now() - started);
          fs.rmSync(path.join(config.backupsDir, made.name));
          progress(`  round ${round} create ${fixed(creates[creates.length - 1], 0)} ms`);
          continue;
        }
        const made = await service.create({ actor, kind: 'manual' });
        await prepare();
        current = {};
        const started = performance.now();
        const answer = (await restorer.restore(made.name, { actor, meta: {} })) as { safety_backup: string };
        current.total = performance.now() - started;
        restores.push(current);
        const done = current;
        current = {};
        loads.push(os.loadavg()[0].toFixed(2));
        progress(
          `  round ${round} restore ${fixed(done.total, 0)} ms: ${JSON.stringify(done, (_k, v: unknown) =>
            typeof v === 'number' ? Math.round(v) : v,
          )}`,
        );
        fs.rmSync(path.join(config.backupsDir, made.name));
        fs.rmSync(path.join(config.backupsDir, answer.safety_backup));
      }
    }
    await app.close();
    const createMs = median(creates);
    const labels = [...new Set(restores.flatMap((r) => Object.keys(r)))];
    const rows = labels.map((label) => {
      const values = restores.map((r) => r[label] ?? 0);
      return [label, fixed(median(values), 0), values.map((v) => fixed(v, 0)).join(' / ')];
    });
    rows.push(['`create()`', fixed(createMs, 0), creates.map((v) => fixed(v, 0)).join(' / ')]);
    const ratio = median(restores.map((r) => r.total)) / createMs;
    process.stdout.write(
      `${options.sizeMiB} MiB, ${options.runs} rounds, load (1 min) after each restore: ${loads.join(', ')}\n\n` +
        `${markdownTable(['phase', 'median ms', 'runs ms'], rows)}\n\nrestore / create(): ${fixed(ratio, 2)}×\n`,
    );
  } finally {
    removeBuild();
    if (!options.keep) {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `restore-phases failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
