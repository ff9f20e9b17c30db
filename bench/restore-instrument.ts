/**
 * Times an online restore phase by phase by wrapping the compiled service's own methods from the outside (nothing in
 * src/ knows about it): used by `npm run bench:restore` and the end-to-end point-in-time bench.
 */
import * as path from 'node:path';

export type Phases = Record<string, number>;

/**
 * Wraps `target[key]` (a function) so that each call's wall time is added to `phases[label]` (a label may depend on
 * the call's arguments).
 */
export function timeMethod(
  target: Record<string, unknown>,
  key: string,
  label: string | ((...a: unknown[]) => string),
  phases: () => Phases,
): void {
  const original = target[key] as (...a: unknown[]) => unknown;
  target[key] = function (this: unknown, ...a: unknown[]): unknown {
    const started = performance.now();
    const name = typeof label === 'string' ? label : label(...a);
    const add = (): void => {
      const p = phases();
      p[name] = (p[name] ?? 0) + performance.now() - started;
    };
    const result = original.apply(this, a);
    if (result instanceof Promise) {
      return result.finally(add);
    }
    add();
    return result;
  };
}

/** Wraps the compiled modules under `root` so that each restore's phases land in `current()`. */
export function instrument(root: string, current: () => Phases): void {
  /* eslint-disable @typescript-eslint/no-require-imports -- the compiled modules of this run, by path */
  const files = require(path.join(root, 'backups', 'backup-files')) as { BackupFiles: { prototype: object } };
  const snapshot = require(path.join(root, 'sqlite', 'snapshot')) as Record<string, unknown>;
  const state = require(path.join(root, 'recovery', 'restore-state')) as Record<string, unknown>;
  /* eslint-enable @typescript-eslint/no-require-imports */
  const proto = files.BackupFiles.prototype as Record<string, unknown>;
  timeMethod(proto, 'inspect', 'verify (inspect: integrity_check + sha256)', current);
  timeMethod(proto, 'snapshot', 'safety snapshot (child: copy, quick_check ∥ fsync ∥ sha256, publish)', current);
  // Since 2026-12-04 the safety copy is begun beside the verify and only published under the lock (taken again there,
  // as `snapshot`, when someone committed meanwhile).
  if (typeof proto.publishSnapshot === 'function') {
    timeMethod(
      proto,
      'copyToTemp',
      'safety copy beside the verify (child: copy, quick_check ∥ fsync ∥ sha256)',
      current,
    );
    timeMethod(proto, 'publishSnapshot', 'safety copy published (link, fsync of the folder)', current);
  }
  // Before 2026-12-03 (a `--base` tree of then) every scratch copy was a page copy; since, a byte copy with its
  // sha256 (the page copy only beside a -wal or -journal).
  timeMethod(proto, 'restoreBackupToTemp', 'scratch copy of the backup (page copy, fsync)', current);
  if (typeof proto.copyBackupToScratch === 'function') {
    timeMethod(proto, 'copyBackupToScratch', 'scratch copy of the backup (bytes + sha256, no fsync)', current);
  }
  // Health's periodic check of the live database calls the same function; it is not a phase of the restore.
  timeMethod(
    snapshot,
    'runProbeWorker',
    (file) =>
      path.basename(String(file)).startsWith('.mc-tmp-')
        ? 'quick_check of the scratch copy'
        : "health's periodic check of the live database (not a restore phase)",
    current,
  );
  // On the main thread before issue #19's fix (a `--base` tree of then); in the carry-over worker since.
  timeMethod(state, 'finishRestore', 'finishing txn (main thread)', current);
  if (typeof snapshot.runCarryOverWorker === 'function') {
    timeMethod(snapshot, 'runCarryOverWorker', 'carry-over (worker: live state read, finishing txn, admins)', current);
  }
  for (const key of ['restoreTempInto']) {
    const original = proto[key] as (name: string, live: string, o?: Record<string, unknown>) => Promise<unknown>;
    proto[key] = async function (this: unknown, name: string, live: string, o: Record<string, unknown> = {}) {
      const started = performance.now();
      let lockedAt = NaN;
      let lockedEnd = NaN;
      const whileLocked = o.whileLocked as (() => Promise<void>) | undefined;
      const wrapped = whileLocked
        ? {
            ...o,
            whileLocked: async (): Promise<void> => {
              lockedAt = performance.now();
              try {
                await whileLocked();
              } finally {
                lockedEnd = performance.now();
              }
            },
          }
        : o;
      const result = (await original.call(this, name, live, wrapped)) as {
        copyMs: number;
        gateMs?: number;
        syncMs?: number;
        checkpointMs?: number;
      };
      const end = performance.now();
      const p = current();
      if (whileLocked) {
        const gateMs = result.gateMs ?? 0;
        p['worker start + lock wait'] = lockedAt - started;
        p['locked, before the copy-in (safety copy; only its pages when gated)'] = lockedEnd - lockedAt;
        p['copy-in (backup API into the WAL)'] = result.copyMs;
        p['copy-in waits at the commit gate (safety checks, journal)'] = gateMs;
        const syncMs = result.syncMs ?? 0;
        const checkpointMs = result.checkpointMs ?? 0;
        p['copy-in: fsync of the WAL (synchronous=FULL commit)'] = syncMs;
        p['copy-in: wal_checkpoint(TRUNCATE)'] = checkpointMs;
        p['after copy (worker exit, rest)'] = end - lockedEnd - result.copyMs - gateMs - syncMs - checkpointMs;
        // Writers (the service's and anyone's) wait this long: the lock is taken before the safety copy is published
        // and the carry-over runs, and the WAL's fsync and the TRUNCATE checkpoint keep them out too.
        p['writers wait (write lock to the end of the checkpoint; not a phase)'] =
          lockedEnd - lockedAt + result.copyMs + gateMs + syncMs + checkpointMs;
      }
      return result;
    };
  }
}
