/**
 * Entry point of the snapshot child process (see runSnapshotWorker in snapshot.ts). A process of its own, not a
 * thread of the service, because:
 * - its memory maps, buffers and file handles never count against the service process, and end with it;
 * - every one of its threads can run at a lower CPU priority than the service's (see DEFAULT_SNAPSHOT_NICE in snapshot-options.ts).
 * Keep imports to node built-ins, better-sqlite3 and snapshot-copy so that it starts fast and never loads Nest.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { SnapshotChildJob, SnapshotWorkerReply, WorkerFailure } from './snapshot';
import { runSnapshotJob } from './snapshot-copy';

function toFailure(err: unknown): WorkerFailure {
  const e = err as { message?: unknown; code?: unknown } | null;
  return {
    ok: false,
    message: typeof e?.message === 'string' ? e.message : 'Snapshot process failed',
    code: typeof e?.code === 'string' ? e.code : undefined,
  };
}

/**
 * On Linux a nice value belongs to a thread, not to the process: setpriority(0) would lower only this thread and
 * the threads it starts later, while V8's and libuv's helpers started at boot would keep the service's priority.
 * So every thread that exists now is lowered by its id; later ones inherit from whoever starts them.
 */
function threadIds(): number[] {
  try {
    return fs.readdirSync('/proc/self/task').map(Number);
  } catch {
    return [0];
  }
}

function lowerPriority(nice: number): void {
  const target = Math.min(19, nice);
  for (const tid of threadIds()) {
    try {
      if (os.getPriority(tid) < target) {
        os.setPriority(tid, target);
      }
    } catch {
      // Not allowed here (some containers) or the thread ended: it runs at the service's priority.
    }
  }
}

/** The highest priority (lowest nice value) any thread of this process runs at, for the reply. */
function highestThreadPriority(): number | undefined {
  let lowest: number | undefined;
  for (const tid of threadIds()) {
    try {
      const nice = os.getPriority(tid);
      lowest = lowest === undefined ? nice : Math.min(lowest, nice);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return lowest;
}

/**
 * SCHED_IDLE for every thread: runs only on a core nothing else wants. Node has no binding for
 * sched_setscheduler; util-linux's chrt does it (all threads with -a). Absent or refused: nice alone.
 */
function idleClass(): void {
  try {
    spawnSync('chrt', ['--idle', '--all-tasks', '--pid', '0', String(process.pid)], { stdio: 'ignore', timeout: 2000 });
  } catch {
    // No chrt: the nice value still applies.
  }
}

if (process.send !== undefined) {
  process.once('message', (job: SnapshotChildJob) => {
    lowerPriority(job.nice);
    if (job.idle) {
      idleClass();
    }
    void runSnapshotJob(job, { mmap: true, checkThreads: job.checkThreads })
      .catch(toFailure)
      .then((reply: SnapshotWorkerReply) => {
        const withRss = reply.ok
          ? { ...reply, peakRssBytes: process.resourceUsage().maxRSS * 1024, threadNice: highestThreadPriority() }
          : reply;
        process.send?.(withRss, () => process.disconnect());
      });
  });
  // The service went away: nothing is waiting for this copy any more.
  process.once('disconnect', () => process.exit(0));
}
