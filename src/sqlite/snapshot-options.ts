/** How the snapshot child runs: its priority and how it checks the copy (see snapshot.ts). */
export interface SnapshotOptions {
  /** SQLite busy timeout for the worker's own connection to the source. */
  busyTimeoutMs?: number;
  /** Give up after this many backup steps (each extra one is a busy wait or a restart). */
  maxSteps?: number;
  /** Aborting terminates the worker; the caller must still remove `dest` and its siblings. */
  signal?: AbortSignal;
  /** Compute the copy's sha256 in the worker (default true). */
  hash?: boolean;
  /** The nice value of every thread of the child (default {@link DEFAULT_SNAPSHOT_NICE}; 0 = the service's). */
  nice?: number;
  /** Also put the child in the SCHED_IDLE class (default {@link DEFAULT_SNAPSHOT_IDLE}). */
  idle?: boolean;
  /** quick_check and sha256 of the copy side by side or one after the other (default {@link DEFAULT_CHECK_THREADS}). */
  checkThreads?: CheckThreads;
}

/**
 * `parallel`: quick_check and sha256 on two threads at once; `serial`: one after the other on one; `auto`: parallel
 * only while the machine has a core to spare (load average below the cores minus one).
 */
export type CheckThreads = 'parallel' | 'serial' | 'auto';

/**
 * The nice value of every thread of the snapshot child. Nice values weigh threads against the other threads of the
 * same scheduling group (the service's autogroup or systemd cgroup), not against other programs: at 19 the copy
 * takes whatever the service's own threads leave, so requests answered during a backup wait for no copy, and it
 * gives up nothing to other work on the machine that it did not already share. Measured in `npm run bench`.
 */
export const DEFAULT_SNAPSHOT_NICE = 19;
/**
 * SCHED_IDLE is not the default: any task that wakes up preempts an idle-class one, so on a machine where other
 * programs keep the cores busy the copy all but stops (the bench measures it as `worker-idle`).
 */
export const DEFAULT_SNAPSHOT_IDLE = false;
/** On a machine with no idle core a second checking thread only takes CPU from the service's requests. */
export const DEFAULT_CHECK_THREADS: CheckThreads = 'auto';
