import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * The compiled service and CLI: dist/, made current once per test run by the e2e project's global setup
 * (test/global-setup.js, the same build `npm start` makes), so each CLI spawn costs well under a second instead of
 * ts-node's 3-4 s, and no suite compiles the tree again. Shared by every suite: never delete it.
 */
export function compiledBuild(): { mainJs: string; outDir: string } {
  const outDir = path.join(ROOT, 'dist');
  const mainJs = path.join(outDir, 'cli', 'main.js');
  if (!fs.existsSync(mainJs) || !fs.existsSync(path.join(outDir, 'main.js'))) {
    throw new Error('dist/ is missing: run the e2e suites through jest (its global setup builds dist/)');
  }
  return { mainJs, outDir };
}

/**
 * The node options for a compiled entry point (dist/main.js, dist/cli/main.js) started by a test: the V8 code cache
 * the production launchers install (test/helpers/compiled-code-cache.js). It only spares V8 the parsing and
 * compiling of unchanged modules; what runs is the same.
 */
export function compiledNodeArgs(): string[] {
  return ['-r', path.join(__dirname, 'compiled-code-cache.js')];
}

/** Runs the compiled CLI as a real process with only the environment the test gives it (and no terminal). */
export function runCli(
  mainJs: string,
  dbPath: string,
  args: string[],
  env: Record<string, string> = {},
  input?: string,
): CliRun {
  const started = Date.now();
  const result = spawnSync(process.execPath, [...compiledNodeArgs(), mainJs, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    input,
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '',
      // The build lives outside the project, so its requires need to be pointed at our node_modules.
      NODE_PATH: path.join(ROOT, 'node_modules'),
      MISSION_CONTROL_DB_PATH: dbPath,
      LOG_LEVEL: 'warn',
      ...env,
    },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, ms: Date.now() - started };
}

/** `npm run cli -- …`, exactly as an operator types it (dist/cli/main.js, built first when missing or stale). */
export function runNpmCli(dbPath: string, args: string[]): CliRun {
  const started = Date.now();
  const result = spawnSync('npm', ['run', '--silent', 'cli', '--', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 180_000,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? tmpdir(),
      MISSION_CONTROL_DB_PATH: dbPath,
      LOG_LEVEL: 'warn',
    },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, ms: Date.now() - started };
}
