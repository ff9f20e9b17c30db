/**
 * Small, dependency-free helpers for bench/backup.bench.ts: argument parsing, statistics, child processes and the
 * Markdown table. Nothing here knows about the app.
 */
import { spawn } from 'node:child_process';

export interface BenchOptions {
  /** Target database size in MiB. */
  sizeMiB: number;
  /** Working folder; undefined means a fresh folder under os.tmpdir(). */
  dir?: string;
  /** Leave the folder (database and backups folder) in place at the end. */
  keep: boolean;
  /** Run the off-site benchmark (bench/offsite.bench.ts) instead. */
  offsite?: boolean;
  /** Run the replication staleness benchmark (bench/replication.bench.ts) instead. */
  replication?: boolean;
  /** Timed runs per tool; the median is reported. */
  runs: number;
  /** Load the app from its TypeScript sources through ts-node instead of compiling it first (not like production). */
  fromSource: boolean;
  /** Repeat the timed rounds beside `stress -c 2` (in a session of its own) and compare side by side. */
  stress: boolean;
  /** Only the timed backup rounds: no online restore, no listing. */
  backupsOnly: boolean;
  /** Only these tools in the timed rounds (default: all). */
  tools?: string[];
  /** Run the point-in-time restore benchmark (bench/pitr.bench.ts) instead. */
  pitr?: boolean;
  /** Point-in-time bench: time one POST /api/backup/restore of the running app instead (bench/pitr-e2e.ts). */
  endToEnd?: boolean;
  /** Point-in-time bench: seconds of history at 100 commits/s. */
  seconds: number;
  /** Run the memory benchmark (bench/memory.bench.ts) instead. */
  memory?: boolean;
  /** Run the kernel preemption probe (bench/preemption.bench.ts) instead. */
  preemption?: boolean;
  /** Memory bench: minutes of mixed load, clients, seconds of idle after it, app variants. */
  minutes: number;
  clients: number;
  idleSeconds: number;
  variants?: string[];
}

export const USAGE = `Usage: npm run bench -- [--size <MiB>] [--dir <folder>] [--keep] [--runs <n>] [--from-source] [--offsite] [--replication]
       [--no-stress] [--backups-only] [--tools a,b,...]
       [--pitr [--seconds <n>] [--end-to-end]] [--memory [--minutes <n>] [--clients <n>] [--idle <s>] [--variants a,b]]
       [--preemption [--seconds <n>]]

  --size <MiB>     database size to build and back up (default 1024 = 1 GiB)
  --dir <folder>   work here (created; must be empty or absent); default: a fresh folder under the OS temp dir
  --keep           leave the folder (database, backups/) in place at the end; otherwise it is removed
  --runs <n>       timed runs per tool, interleaved; the median is reported (default 3)
  --from-source    run the app from src/*.ts through ts-node instead of compiling it to JS first; the snapshot
                   worker then loads ts-node too (~0.2-0.3 s and ~60 MiB more per backup), unlike production
  --offsite        instead: encrypt-and-upload vs a plain lib-storage upload to s3rver on loopback, RSS growth,
                   temporary disk, and restore --from-remote time (see bench/offsite.bench.ts)
  --replication    instead: continuous replication's staleness at 100 commits/s, CPU, RSS, event loop delay
                   (see bench/replication.bench.ts)
  --no-stress      skip the second pass of the timed rounds beside \`stress -c 2\` (run by default when the
                   stress command is installed: Debian package "stress")
  --backups-only   only the timed backup rounds (no online restore, no listing of 10,000 backups)
  --tools a,b,...  only these tools in the timed rounds (service, service-load, worker, worker-nice0, worker-nice10,
                   worker-nice19, worker-idle, worker-serial, cli-backup, vacuum-into, cp); cli-backup is always
                   kept as the reference
  --pitr           instead: point-in-time restore at scale: a --size MiB database (default 1024), then --seconds
                   (default 3600) of 100 commits/s shipped to s3rver, then the latest state and the middle moment
                   rebuilt from the bucket (see bench/pitr.bench.ts); with --end-to-end the compiled app is started
                   on that database and one POST /api/backup/restore { point_in_time } is timed (bench/pitr-e2e.ts)
  --memory         instead: RSS of the app (its own process) through --minutes (default 10) of mixed load from
                   --clients (default 20) loops, then --idle seconds (default 60) without requests; --variants
                   (default "default,arena2") runs app processes side by side under the same load, e.g.
                   arena2 = MALLOC_ARENA_MAX=2 (see bench/memory.bench.ts); --size defaults to 64 here
  --preemption     instead: how late a thread at the service's priority wakes beside two nice 19 processes doing
                   reads or writes of 8 MiB down to the service's own I/O size, --seconds each (default 8; see
                   bench/preemption.bench.ts)`;

export class UsageError extends Error {}

function positiveNumber(flag: string, raw: string | undefined, integer: boolean): number {
  if (raw === undefined || raw.startsWith('--')) {
    throw new UsageError(`${flag} needs a value`);
  }
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new UsageError(`${flag} must be a positive ${integer ? 'whole ' : ''}number, got "${raw}"`);
  }
  return value;
}

export function parseArgs(argv: readonly string[]): BenchOptions {
  const options: BenchOptions = {
    sizeMiB: 1024,
    keep: false,
    runs: 3,
    fromSource: false,
    stress: true,
    backupsOnly: false,
    minutes: 10,
    clients: 20,
    idleSeconds: 60,
    seconds: 3600,
  };
  let sizeGiven = false;
  let secondsGiven = false;
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let inline: string | undefined;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      inline = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const value = (): string | undefined => inline ?? argv[++i];
    switch (arg) {
      case '--size':
        options.sizeMiB = positiveNumber('--size', value(), false);
        sizeGiven = true;
        if (options.sizeMiB < 1) {
          throw new UsageError('--size must be at least 1 (MiB)');
        }
        break;
      case '--dir': {
        const dir = value();
        if (dir === undefined || dir === '' || dir.startsWith('--')) {
          throw new UsageError('--dir needs a folder');
        }
        options.dir = dir;
        break;
      }
      case '--runs':
        options.runs = positiveNumber('--runs', value(), true);
        break;
      case '--keep':
        options.keep = true;
        break;
      case '--from-source':
        options.fromSource = true;
        break;
      case '--offsite':
        options.offsite = true;
        break;
      case '--replication':
        options.replication = true;
        break;
      case '--memory':
        options.memory = true;
        break;
      case '--preemption':
        options.preemption = true;
        break;
      case '--pitr':
        options.pitr = true;
        break;
      case '--end-to-end':
        options.endToEnd = true;
        break;
      case '--seconds':
        options.seconds = positiveNumber('--seconds', value(), true);
        secondsGiven = true;
        break;
      case '--minutes':
        options.minutes = positiveNumber('--minutes', value(), false);
        break;
      case '--clients':
        options.clients = positiveNumber('--clients', value(), true);
        break;
      case '--idle':
        options.idleSeconds = positiveNumber('--idle', value(), false);
        break;
      case '--variants': {
        const list = value();
        if (list === undefined || list.startsWith('--')) {
          throw new UsageError('--variants needs a comma-separated list');
        }
        options.variants = list.split(',').filter((t) => t.length > 0);
        break;
      }
      case '--no-stress':
        options.stress = false;
        break;
      case '--backups-only':
        options.backupsOnly = true;
        break;
      case '--tools': {
        const list = value();
        if (list === undefined || list.startsWith('--')) {
          throw new UsageError('--tools needs a comma-separated list');
        }
        options.tools = list.split(',').filter((t) => t.length > 0);
        break;
      }
      case '--help':
      case '-h':
        throw new UsageError('');
      default:
        throw new UsageError(`Unknown argument "${argv[i]}"`);
    }
  }
  if (options.memory && !sizeGiven) {
    options.sizeMiB = 64;
  }
  if (options.preemption && !secondsGiven) {
    options.seconds = 8;
  }
  return options;
}

export function sortedCopy(values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

/** Nearest-rank percentile (p in 0..100) of the values; NaN for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) {
    return NaN;
  }
  const sorted = sortedCopy(values);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

export function median(values: readonly number[]): number {
  if (values.length === 0) {
    return NaN;
  }
  const sorted = sortedCopy(values);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function maxOf(values: readonly number[]): number {
  return values.length === 0 ? NaN : Math.max(...values);
}

export function fixed(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

export const MIB = 1024 * 1024;
/** Throughput is reported in MB/s with MB = 10^6 bytes. */
export const MB = 1_000_000;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, process start-up included. */
  ms: number;
}

/** Runs a command without a shell (arguments are passed as is) and without blocking the event loop. */
export function runCommand(command: string, args: readonly string[], discardStdout = false): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', discardStdout ? 'ignore' : 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: performance.now() - started }));
  });
}

/** Like runCommand, but a non-zero exit is an error naming the command and its stderr. */
export async function mustRun(command: string, args: readonly string[], discardStdout = false): Promise<CommandResult> {
  const result = await runCommand(command, args, discardStdout);
  if (result.code !== 0) {
    throw new Error(`${command} exited with ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
  }
  return result;
}

export function markdownTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, col) => Math.max(h.length, ...rows.map((row) => (row[col] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((cell, col) => (cell ?? '').padEnd(widths[col])).join(' | ')} |`;
  return [line(header), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)].join('\n');
}

/** Progress goes to stderr so that stdout carries only the report. */
export function progress(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}
