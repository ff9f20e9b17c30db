/**
 * `npm run bench -- --pitr --end-to-end [--size <MiB>] [--seconds <n>]`: the target as one timed API call.
 * The compiled app's database (its schema, then --size MiB of filler) gets --seconds of 100 commits/s shipped to
 * s3rver on an injected clock that ends a few minutes ago, through a shipper with the service's own spool folder;
 * then the app starts on that database with replication on (it resumes the generation, or starts a new one: the
 * bench waits until it streams), and `POST /api/backup/restore { point_in_time }` is timed over HTTP, for the last
 * commit of the hour and for its middle: rebuild from the bucket, admission, the online restore (safety copy,
 * carry-over, copy-in). The rows of the restored live database are counted after each.
 */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import { generateIdentityFile } from '../src/offsite/age-crypto';
import { buildDir, loadApp } from './bench-app';
import { fillDatabase } from './bench-db';
import { BENCH_BUCKET, benchReplicaStore, startS3rver } from './bench-s3rver';
import { fixed, markdownTable, progress, type BenchOptions } from './bench-util';
import { shipHistory } from './pitr.bench';
import { instrument, type Phases, timeMethod } from './restore-instrument';
import type { RebuildResult } from '../src/replication/replica-rebuild';

const PREFIX = 'mission-control/';
const TARGET_SECONDS = 30;

interface TimedRestore {
  label: string;
  ms: number;
  restoredTo: string;
  rows: number;
  expected: number;
  load: string;
  phases: Phases;
}

async function api(base: string, apiKey: string, method: string, route: string, body?: unknown) {
  const response = await fetch(`${base}${route}`, {
    method,
    headers: { 'x-api-key': apiKey, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Until replication streams with nothing waiting (a new generation's 1 GiB snapshot takes a while). */
async function untilStreaming(base: string, apiKey: string): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    const { body } = await api(base, apiKey, 'GET', '/api/backup/replication');
    if (body.status === 'streaming' && body.pending_bytes === 0) {
      return body;
    }
    if (Date.now() > deadline) {
      throw new Error(`replication never settled: ${JSON.stringify(body)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function phaseCell(name: string, ms: number | undefined): string {
  if (ms === undefined) {
    return '';
  }
  if (name.endsWith('applied')) {
    return String(ms);
  }
  return fixed(ms / 1000, 2);
}

async function untilProbed(base: string, apiKey: string): Promise<void> {
  const deadline = Date.now() + 5 * 60_000;
  while (!/"quick_check_at":\d/.test(JSON.stringify((await api(base, apiKey, 'GET', '/api/health')).body))) {
    if (Date.now() > deadline) {
      throw new Error('the health probe never checked the live database');
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

export async function runPitrEndToEnd(options: BenchOptions): Promise<number> {
  const root = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'mc-pitr-e2e-'));
  const s3Dir = path.join(root, 's3');
  fs.mkdirSync(s3Dir, { recursive: true });
  const { port, child } = await startS3rver(s3Dir);
  const endpoint = `http://127.0.0.1:${port}`;
  const { text, recipient } = await generateIdentityFile(new Date());
  const identityFile = path.join(root, 'identity.txt');
  fs.writeFileSync(identityFile, text, { mode: 0o600 });
  const liveDir = path.join(root, 'live');
  fs.mkdirSync(liveDir);
  const dbPath = path.join(liveDir, 'mission-control.db');
  const apiKey = randomBytes(16).toString('hex');
  const env = (replication: 'on' | 'off'): Record<string, string> => ({
    MISSION_CONTROL_DB_PATH: dbPath,
    AUTH_USER: 'bench-admin',
    AUTH_PASS: 'bench-password-123',
    API_KEY: apiKey,
    LOG_LEVEL: 'error',
    OFFSITE_S3_BUCKET: BENCH_BUCKET,
    OFFSITE_S3_ENDPOINT: endpoint,
    OFFSITE_S3_PREFIX: PREFIX,
    BACKUP_ENCRYPTION_RECIPIENTS: recipient,
    BACKUP_ENCRYPTION_IDENTITY_FILE: identityFile,
    REPLICATION: replication,
  });
  const load0 = os.loadavg();
  let app: Awaited<ReturnType<Awaited<ReturnType<typeof loadApp>>['createApp']>> | undefined;
  try {
    progress('pitr end to end: compiling src/ with tsc');
    const modules = await loadApp(false);
    const boot = await modules.createApp(modules.loadConfig(env('off')));
    boot.useLogger(['error']);
    await boot.init();
    await boot.close();
    progress(`pitr end to end: filling the app's database to ${options.sizeMiB} MiB`);
    fillDatabase(dbPath, options.sizeMiB * 1048576);

    const db = new Database(dbPath);
    db.pragma('journal_mode = WAL');
    db.pragma('wal_autocheckpoint = 0');
    db.exec('CREATE TABLE events (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, body TEXT NOT NULL)');
    const { bucket, store } = benchReplicaStore(endpoint, PREFIX, recipient, identityFile, 120_000);
    // The hour ends five minutes ago on the service's own clock, so every moment of it is in the past.
    const startMs = Date.now() - (options.seconds + 300) * 1000;
    const history = await shipHistory(db, dbPath, liveDir, store, options.seconds, startMs);
    await history.compactor.stop();
    history.shipper.stop();
    bucket.destroy();
    const lastCommitAt = history.end - 1000 + 500;

    const phases: { current: Phases } = { current: {} };
    const compiled = buildDir();
    instrument(compiled, () => phases.current);
    /* eslint-disable @typescript-eslint/no-require-imports -- the compiled modules of this run, by path */
    const replication = require(path.join(compiled, 'replication', 'replication.service')) as {
      ReplicationService: { prototype: object };
    };
    const imports = require(path.join(compiled, 'recovery', 'import-pipeline')) as {
      ImportPipeline: { prototype: object };
    };
    const restoreModule = require(path.join(compiled, 'recovery', 'restore.service')) as {
      RestoreService: { prototype: object };
    };
    const rebuildModule = require(path.join(compiled, 'replication', 'replica-rebuild')) as Record<string, unknown>;
    /* eslint-enable @typescript-eslint/no-require-imports */
    const proto = (target: { prototype: object }) => target.prototype as Record<string, unknown>;
    timeMethod(proto(replication.ReplicationService), 'rebuildAt', 'rebuild from the bucket', () => phases.current);
    timeMethod(proto(imports.ImportPipeline), 'admit', 'admission (integrity_check, sha256)', () => phases.current);
    timeMethod(proto(restoreModule.RestoreService), 'restore', 'online restore (all of it)', () => phases.current);
    // The rebuild's own split (compiled CommonJS calls it through the module object, so the wrapper is seen).
    const rebuild = rebuildModule.rebuildAt as (...a: unknown[]) => Promise<RebuildResult>;
    rebuildModule.rebuildAt = async (...a: unknown[]): Promise<RebuildResult> => {
      const result = await rebuild(...a);
      for (const [phase, ms] of Object.entries(result.timings)) {
        phases.current[`rebuild: ${phase}`] = ms;
      }
      phases.current['rebuild: ranges applied'] = result.rangesApplied;
      phases.current['rebuild: segments applied'] = result.segmentsApplied;
      return result;
    };

    progress('pitr end to end: starting the app with replication on');
    // Started while this connection still holds the database open: closing the last connection would checkpoint
    // and delete the WAL, and the service could not resume the generation.
    app = await modules.createApp(modules.loadConfig(env('on')));
    app.useLogger(['error']);
    await app.listen(0, '127.0.0.1');
    db.close();
    const base = await app.getUrl();
    const settled = await untilStreaming(base, apiKey);
    progress(`pitr end to end: streaming, generation ${String(settled.generation)}`);
    // The health probe's first quick_check of the live 1 GiB comes a minute after start: not part of a restore.
    await untilProbed(base, apiKey);
    progress('pitr end to end: the health probe has checked the live database once');
    const live = app.get(DataSource);

    const restores: TimedRestore[] = [];
    for (const [label, at, expected] of [
      ['the end of the hour', lastCommitAt, history.commits],
      ['the middle of the hour', history.middle.at, history.middle.commits],
    ] as const) {
      await untilStreaming(base, apiKey);
      progress(`pitr end to end: POST /api/backup/restore at ${label}`);
      phases.current = {};
      const started = performance.now();
      const answer = await api(base, apiKey, 'POST', '/api/backup/restore', {
        point_in_time: new Date(at).toISOString(),
      });
      const ms = performance.now() - started;
      if (answer.status !== 200) {
        throw new Error(`restore at ${label} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
      }
      const [{ n }] = await live.query<Array<{ n: number }>>('SELECT count(*) AS n FROM events');
      restores.push({
        label,
        ms,
        restoredTo: String(answer.body.restored_to),
        rows: Number(n),
        expected,
        load: fixed(os.loadavg()[0], 1),
        phases: phases.current,
      });
      progress(`  ${fixed(ms / 1000, 2)} s, ${n} of ${expected} rows`);
    }
    const load1 = os.loadavg();
    const phaseNames = [...new Set(restores.flatMap((r) => Object.keys(r.phases)))];
    process.stdout.write(
      `\nPoint-in-time restore end to end (one POST /api/backup/restore over HTTP), ${os.cpus().length} CPUs, ` +
        `load before ${load0.map((l) => fixed(l, 1)).join(' ')}, after ${load1.map((l) => fixed(l, 1)).join(' ')}; ` +
        `${fixed(options.sizeMiB, 0)} MiB and ${history.commits} commits (${options.seconds} s at 100/s), ` +
        `target ≤ ${TARGET_SECONDS} s\n\n` +
        markdownTable(
          ['moment', 'POST → 200', 'load (1 min)', 'restored_to', 'rows', ...phaseNames],
          restores.map((r) => [
            r.label,
            `**${fixed(r.ms / 1000, 2)} s**`,
            r.load,
            r.restoredTo,
            `${r.rows} of ${r.expected}`,
            ...phaseNames.map((name) => phaseCell(name, r.phases[name])),
          ]),
        ) +
        '\n',
    );
    return restores.every((r) => r.rows === r.expected) ? 0 : 1;
  } finally {
    await app?.close();
    child.kill();
    if (!options.keep) {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
}
