import type { ReplicaStore } from './replica-store';
import type { CheckpointMode, KillPoint } from './shipper-io';
import { WAL_HEADER_SIZE } from './wal-reader';

/** At most this much WAL per segment; a longer backlog ships as several. */
export const MAX_SEGMENT_BYTES = 64 * 1024 * 1024;
/** A PASSIVE checkpoint once the WAL cycle is this long (a shorter WAL replays faster)… */
export const CHECKPOINT_BYTES = 4 * 1024 * 1024;
/** …or this long after the last one. */
export const CHECKPOINT_EVERY_MS = 30_000;
/**
 * The WAL bound: past it (the cycle or the file), the checkpoint also truncates the WAL. PASSIVE alone cannot
 * restart a WAL that readers never leave, nor take a lock that writers never release.
 */
export const WAL_LIMIT_BYTES = 64 * 1024 * 1024;
/** Past the bound, how long the worker waits for the write lock (and TRUNCATE for readers); below it, never. */
export const BOUND_LOCK_WAIT_MS = 200;

export interface ShipperDeps {
  dbPath: string;
  spoolDir: string;
  store: ReplicaStore;
  now: () => number;
  /** Makes a verified, standalone snapshot of the live database at `dest` (the backup path). */
  snapshot: (dest: string) => Promise<void>;
  /** Called when a generation starts (for the audit trail and metrics). */
  onGeneration: (generation: string, reason: string) => Promise<void> | void;
  log: (level: 'log' | 'warn' | 'error', message: string) => void;
  /** Overrides of the checkpoint constants above (tests). */
  checkpointBytes?: number;
  checkpointEveryMs?: number;
  /**
   * Past this many bytes of WAL the checkpoint also truncates it (TRUNCATE, waiting briefly for the write lock and
   * for readers), so a WAL that PASSIVE cannot restart (readers always in it, writers always busy) stays bounded.
   */
  walLimitBytes?: number;
  /** Tests only: the process kills itself (SIGKILL) when its shipper's I/O reaches this point. */
  killAt?: KillPoint;
  /** Read, compress and encrypt on the calling thread instead of a worker (the benchmark's baseline). */
  inlineIo?: boolean;
  /** Beyond this much spooled data the spool is given up and a new generation starts once the bucket answers. */
  spoolMaxBytes?: number;
}

export type ShipperStatus = 'starting' | 'streaming' | 'catching_up' | 'failed';

export interface PendingSwitch {
  reason: string;
  /** The cycle (salts) when the snapshot began, and whether this service had closed it. */
  cycle: { salt1: number; salt2: number } | null;
  closed: boolean;
  /** The generation the new one takes over from without a gap, if continuity held. */
  from: string | null;
}

/** Whether a checkpoint is due now, and which: null when not. */
export function checkpointPlan(
  deps: Pick<ShipperDeps, 'checkpointBytes' | 'checkpointEveryMs' | 'walLimitBytes' | 'now'>,
  cycleBytes: number,
  fileBytes: number,
  lastCheckpointMs: number,
): { mode: CheckpointMode; waitMs: number } | null {
  // The file too: a cycle can be short in a file that an earlier, longer one left large.
  if (Math.max(cycleBytes, fileBytes) >= (deps.walLimitBytes ?? WAL_LIMIT_BYTES)) {
    return { mode: 'TRUNCATE', waitMs: BOUND_LOCK_WAIT_MS };
  }
  const due =
    cycleBytes >= (deps.checkpointBytes ?? CHECKPOINT_BYTES) ||
    (cycleBytes > WAL_HEADER_SIZE && deps.now() - lastCheckpointMs >= (deps.checkpointEveryMs ?? CHECKPOINT_EVERY_MS));
  return due ? { mode: 'PASSIVE', waitMs: 0 } : null;
}
