import { BACKUP_PREFIX, type BackupKind } from './backup-name';

export interface RetentionCandidate {
  name: string;
  createdAtMs: number;
  seq: number;
  /**
   * The kind the file's manifest records, when known. `upload` or `safety` keeps the file out of retention whatever
   * its name: a copy pulled from the bucket keeps its `mc-backup-…` name but is recorded as having come from outside.
   */
  recordedKind?: BackupKind | null;
}

/** How far a name may be ahead of the clock before it is suspect: clocks of two machines drift a little. */
export const FUTURE_NAME_TOLERANCE_MS = 5 * 60 * 1000;

export interface RetentionRule {
  /** Keep at most this many (general.backup_retention_count, 1–1000). */
  count: number;
  /** Also remove those older than this many days; 0 turns the age rule off (general.backup_retention_days). */
  maxAgeDays: number;
  nowMs: number;
  /** The backup the calling request just made: never selected, whatever the other files are named. */
  keep?: string;
  /** Defaults to FUTURE_NAME_TOLERANCE_MS. */
  futureToleranceMs?: number;
}

export interface RetentionPlan<T> {
  /** To remove, in no particular order. */
  doomed: T[];
  /**
   * Candidates named later than now (beyond the tolerance): written while the clock was ahead, so their real age is
   * unknown. They are neither removed nor counted, so they can never push a real recent backup out.
   */
  futureNamed: T[];
}

/**
 * Which backups to prune. Only this product's own scheduled/manual backups (`mc-backup-…`) are candidates;
 * uploads, pulled copies, safety copies and any other file are never pruned. Ordered by the time in the name (not
 * the file's mtime, which a copy or restore changes). The newest backup is never removed by the age rule, so a
 * stopped scheduler cannot age every backup away.
 *
 * A name later than now cannot be trusted to be newer than a backup made now, nor older: such files are left
 * alone (reported in `futureNamed` for the operator to judge) rather than deleted on a guess, and they do not
 * take a place in the count. Once the clock passes their time they are ordinary candidates again.
 */
export function planRetention<T extends RetentionCandidate>(
  files: readonly T[],
  rule: RetentionRule,
): RetentionPlan<T> {
  const horizon = rule.nowMs + (rule.futureToleranceMs ?? FUTURE_NAME_TOLERANCE_MS);
  const own = files.filter(
    (file) => file.name.startsWith(BACKUP_PREFIX) && file.recordedKind !== 'upload' && file.recordedKind !== 'safety',
  );
  const futureNamed = own.filter((file) => file.createdAtMs > horizon);
  const candidates = own
    .filter((file) => file.createdAtMs <= horizon)
    .sort((a, b) => b.createdAtMs - a.createdAtMs || b.seq - a.seq || (a.name < b.name ? 1 : -1));
  const maxAgeMs = rule.maxAgeDays * 24 * 60 * 60 * 1000;
  const doomed = candidates.filter((file, index) => {
    if (file.name === rule.keep) {
      return false;
    }
    if (index >= rule.count) {
      return true;
    }
    return index > 0 && rule.maxAgeDays > 0 && rule.nowMs - file.createdAtMs > maxAgeMs;
  });
  return { doomed, futureNamed };
}

/** The files {@link planRetention} would remove. */
export function selectForPruning<T extends RetentionCandidate>(files: readonly T[], rule: RetentionRule): T[] {
  return planRetention(files, rule).doomed;
}
