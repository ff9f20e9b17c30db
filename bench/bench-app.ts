/**
 * Loading the real app for the bench, and the probes that watch it while a backup runs.
 *
 * By default the app is compiled with tsc (tsconfig.build.json, the production build minus the Swagger CLI
 * plugin) into bench/.build/<pid>/ and loaded from there, so the snapshot worker starts from plain JS as it does in
 * production. Under ts-node the worker would register ts-node itself, which adds ~0.2-0.3 s and ~60 MiB of RSS to
 * every backup (measured on this machine): that would be the bench measuring itself.
 */
import { type ChildProcess, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as AppSetupModule from '../src/app.setup';
import type * as BackupsServiceModule from '../src/backups/backups.service';
import type * as SnapshotModule from '../src/sqlite/snapshot';
import type * as AppConfigModule from '../src/config/app-config';
import type { LatencySamples } from './bench-probes';
import { progress, runCommand } from './bench-util';
import type { HttpWriterCommand, HttpWriterReply } from './http-writer';

export interface AppModules {
  createApp: typeof AppSetupModule.createApp;
  loadConfig: typeof AppConfigModule.loadConfig;
  BackupsService: typeof BackupsServiceModule.BackupsService;
  /** The service's worker entry point, for the phase breakdown (copy vs. the rest). */
  runSnapshotWorker: typeof SnapshotModule.runSnapshotWorker;
  /** Where the modules were loaded from, for the report. */
  origin: string;
}

export const REPO_ROOT = path.resolve(__dirname, '..');
const BUILD_ROOT = path.join(__dirname, '.build');

/** The folder the app is compiled into (inside the repository so its requires resolve node_modules). */
export function buildDir(): string {
  return path.join(BUILD_ROOT, String(process.pid), 'dist');
}

export function removeBuild(): void {
  fs.rmSync(path.dirname(buildDir()), { recursive: true, force: true });
  try {
    fs.rmdirSync(BUILD_ROOT); // only when no other bench run is using it
  } catch {
    // not empty or already gone
  }
}

async function compileApp(): Promise<string> {
  const out = buildDir();
  fs.rmSync(out, { recursive: true, force: true });
  const tsc = require.resolve('typescript/bin/tsc');
  const args = [tsc, '-p', path.join(REPO_ROOT, 'tsconfig.build.json'), '--outDir', out, '--sourceMap', 'false'];
  const result = await runCommand(process.execPath, args);
  // The app reads its version from ../../package.json of its compiled files, as from dist/ in production.
  fs.copyFileSync(path.join(REPO_ROOT, 'package.json'), path.join(path.dirname(out), 'package.json'));
  const entry = path.join(out, 'app.setup.js');
  if (!fs.existsSync(entry)) {
    throw new Error(`compiling src/ failed:\n${result.stdout}${result.stderr}`);
  }
  if (result.code !== 0) {
    // tsc still emits on type errors (others may be mid-edit in src/); the JS is usable, so say so and go on.
    progress(`WARNING: tsc reported errors in src/ but emitted JS; continuing:\n${result.stdout.slice(0, 2000)}`);
  }
  return out;
}

export async function loadApp(fromSource: boolean): Promise<AppModules> {
  const root = fromSource ? path.join(REPO_ROOT, 'src') : await compileApp();
  const setup = (await import(path.join(root, 'app.setup'))) as typeof AppSetupModule;
  const config = (await import(path.join(root, 'config', 'app-config'))) as typeof AppConfigModule;
  const service = (await import(path.join(root, 'backups', 'backups.service'))) as typeof BackupsServiceModule;
  const snapshot = (await import(path.join(root, 'sqlite', 'snapshot'))) as typeof SnapshotModule;
  return {
    createApp: setup.createApp,
    loadConfig: config.loadConfig,
    BackupsService: service.BackupsService,
    runSnapshotWorker: snapshot.runSnapshotWorker,
    origin: fromSource ? 'src/*.ts via ts-node (--from-source)' : 'src compiled by tsc to JS (as in production)',
  };
}

/**
 * bench/http-writer.ts in a child process (through ts-node; it starts once): the HTTP client's work then runs on
 * its own event loop, and the latency it records is what a separate client of the app sees.
 */
export class HttpWriterProcess {
  private constructor(private readonly child: ChildProcess) {}

  static async start(): Promise<HttpWriterProcess> {
    const child = fork(path.join(__dirname, 'http-writer.ts'), [], {
      execArgv: ['-r', require.resolve('ts-node/register/transpile-only')],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    await nextReply(child, 'ready');
    return new HttpWriterProcess(child);
  }

  begin(url: string, apiKey: string, intervalMs: number, kind: 'settings' | 'health' = 'settings'): void {
    this.send({ type: 'start', url, apiKey, intervalMs, kind });
  }

  async end(): Promise<LatencySamples> {
    const reply = nextReply(this.child, 'samples');
    this.send({ type: 'stop' });
    const { samples, errors, firstError, slowestAtMs } = (await reply) as Extract<HttpWriterReply, { type: 'samples' }>;
    // NaN crosses IPC (JSON) as null.
    return { samples, errors, firstError, slowestAtMs: Number.isFinite(slowestAtMs) ? slowestAtMs : NaN };
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      return;
    }
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.send({ type: 'exit' });
    const timer = setTimeout(() => this.child.kill(), 2000);
    await exited;
    clearTimeout(timer);
  }

  private send(command: HttpWriterCommand): void {
    this.child.send(command);
  }
}

function nextReply(child: ChildProcess, type: HttpWriterReply['type']): Promise<HttpWriterReply> {
  return new Promise((resolve, reject) => {
    const onMessage = (reply: HttpWriterReply): void => {
      if (reply.type === type) {
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(reply);
      }
    };
    const onExit = (code: number | null): void => {
      child.off('message', onMessage);
      reject(new Error(`http-writer child exited (${code}) while waiting for "${type}"`));
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}
