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
 * Compiles src/ once into a temporary folder (about 8 s) so each CLI spawn costs about 1 s instead of ts-node's
 * 3-4 s. Type errors elsewhere in the tree do not stop tsc from emitting; only a missing entry point fails here.
 */
export function buildCli(): { mainJs: string; outDir: string } {
  const outDir = fs.mkdtempSync(path.join(tmpdir(), 'mc-cli-build-'));
  const tsc = require.resolve('typescript/bin/tsc');
  spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', outDir], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  const mainJs = path.join(outDir, 'cli', 'main.js');
  if (!fs.existsSync(mainJs)) {
    throw new Error('tsc did not produce cli/main.js');
  }
  return { mainJs, outDir };
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
  const result = spawnSync(process.execPath, [mainJs, ...args], {
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
