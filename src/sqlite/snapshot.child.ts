/**
 * Entry point of the snapshot child process (see runSnapshotWorker in snapshot.ts). A process of its own, not a
 * thread of the service, because:
 * - its memory maps, buffers and file handles never count against the service process, and end with it;
 * - it can run at a lower CPU priority (`nice`; measured not to pay by default, see DEFAULT_SNAPSHOT_NICE).
 * Keep imports to node built-ins, better-sqlite3 and snapshot-copy so that it starts fast and never loads Nest.
 */
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

function lowerPriority(nice: number): void {
  try {
    os.setPriority(0, Math.min(19, Math.max(os.getPriority(0), nice)));
  } catch {
    // Not allowed here (some containers): run at the service's priority.
  }
}

if (process.send !== undefined) {
  process.once('message', (job: SnapshotChildJob) => {
    lowerPriority(job.nice);
    void runSnapshotJob(job, { mmap: true })
      .catch(toFailure)
      .then((reply: SnapshotWorkerReply) => {
        const withRss = reply.ok ? { ...reply, peakRssBytes: process.resourceUsage().maxRSS * 1024 } : reply;
        process.send?.(withRss, () => process.disconnect());
      });
  });
  // The service went away: nothing is waiting for this copy any more.
  process.once('disconnect', () => process.exit(0));
}
