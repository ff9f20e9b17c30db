/**
 * `stress -c 2` beside the timed rounds, and the table that puts the quiet and the stressed rounds side by side.
 *
 * The stress processes get a session of their own (setsid), as any other program on the machine has: with
 * autogroup scheduling (the default on Linux desktops and servers) or a systemd unit per service, CPU time is first
 * shared between such groups, and nice values only weigh threads inside one group.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as os from 'node:os';
import { fixed, markdownTable, maxOf, MB, median, percentile, progress, runCommand, sleep } from './bench-util';
import type { LatencySamples } from './bench-probes';

export interface StressHandle {
  child: ChildProcess;
  workers: number;
}

export async function stressAvailable(): Promise<boolean> {
  try {
    const result = await runCommand('stress', ['--version']);
    return result.code === 0;
  } catch {
    return false;
  }
}

/** Starts `stress -c <workers>` in its own session and gives the load average a moment to notice. */
export async function startStress(workers = 2): Promise<StressHandle> {
  const child = spawn('stress', ['-c', String(workers)], { detached: true, stdio: 'ignore' });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', reject);
  });
  progress(`stress -c ${workers} started (pid ${child.pid}, own session)`);
  await sleep(3000);
  return { child, workers };
}

export async function stopStress(handle: StressHandle): Promise<void> {
  const pid = handle.child.pid;
  if (pid === undefined || handle.child.exitCode !== null) {
    return;
  }
  const exited = new Promise<void>((resolve) => handle.child.once('exit', () => resolve()));
  // The whole process group this bench started (stress forks its workers into it), by its id.
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {
    handle.child.kill('SIGTERM');
  }
  await Promise.race([exited, sleep(3000)]);
  progress('stress stopped');
}

/** What the side-by-side table needs of one timed run. */
export interface ComparedRun {
  tool: string;
  bytes: number;
  ms: number;
  health?: LatencySamples;
  loopP99Ms?: number;
  loopMaxMs?: number;
  checkMs?: number;
}

export interface Condition {
  label: string;
  runs: ComparedRun[];
  /** Load average (1 min) when the condition's rounds started and ended. */
  loadStart: number;
  loadEnd: number;
  /** Health pings with no backup running, in this condition. */
  idleHealth?: LatencySamples;
}

function mbps(run: { bytes: number; ms: number }): number {
  return run.bytes / MB / (run.ms / 1000);
}

/** One row per tool: throughput and ratio to `sqlite3 .backup` in each condition, then health during it. */
export function sideBySide(
  conditions: Condition[],
  labels: Record<string, string>,
  targets: { ratio: Record<string, number>; healthP99: Record<string, number>; healthMax: number },
): string {
  const tools = [...new Set(conditions.flatMap((c) => c.runs.map((r) => r.tool)))];
  const header = [
    'Tool',
    ...conditions.flatMap((c) => [`${c.label}: MB/s (ratio)`, `${c.label}: health p99 / max ms`]),
  ];
  const rows: string[][] = [];
  for (const tool of tools) {
    const row = [labels[tool] ?? tool];
    for (const c of conditions) {
      const reference = median(c.runs.filter((r) => r.tool === 'cli-backup').map(mbps));
      const mine = c.runs.filter((r) => r.tool === tool);
      const speed = median(mine.map(mbps));
      const ratio = speed / reference;
      const goal = targets.ratio[c.label];
      const ratioText =
        tool === 'cli-backup'
          ? 'reference'
          : `${fixed(ratio, 2)}×${tool === 'service' && goal !== undefined ? (ratio >= goal ? ' ✓' : ` ✗ (≥ ${goal})`) : ''}`;
      row.push(`${fixed(speed, 0)} (${ratioText})`);
      const withHealth = mine.filter((r) => r.health && r.health.samples.length > 0);
      if (withHealth.length === 0) {
        row.push('—');
        continue;
      }
      const p99 = maxOf(withHealth.map((r) => percentile(r.health?.samples ?? [], 99)));
      const max = maxOf(withHealth.map((r) => maxOf(r.health?.samples ?? [])));
      const goalP99 = targets.healthP99[c.label];
      const mark =
        tool === 'service' && goalP99 !== undefined
          ? p99 <= goalP99 && max <= targets.healthMax
            ? ' ✓'
            : ` ✗ (≤ ${goalP99} / ${targets.healthMax})`
          : '';
      row.push(`${fixed(p99)} / ${fixed(max)}${mark}`);
    }
    rows.push(row);
  }
  const idle = ['Health with no backup running (same condition)'];
  for (const c of conditions) {
    idle.push(
      '',
      c.idleHealth ? `${fixed(percentile(c.idleHealth.samples, 99))} / ${fixed(maxOf(c.idleHealth.samples))}` : '—',
    );
  }
  rows.push(idle);
  const loads = conditions
    .map((c) => `${c.label}: load average ${fixed(c.loadStart, 2)} → ${fixed(c.loadEnd, 2)}`)
    .join('; ');
  return [
    markdownTable(header, rows),
    '',
    `Health p99 / max: worst run of each tool (another process pinging every 10 ms). ${loads}; ` +
      `${os.availableParallelism()} cores. Ratios are to \`sqlite3 .backup\` in the same condition.`,
  ].join('\n');
}
