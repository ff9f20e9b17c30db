import { BACKUP_PREFIX } from './backup-name';

export interface RetentionCandidate {
  name: string;
  createdAtMs: number;
  seq: number;
}

export interface RetentionRule {
  /** Keep at most this many (general.backup_retention_count, 1–1000). */
  count: number;
  /** Also remove those older than this many days; 0 turns the age rule off (general.backup_retention_days). */
  maxAgeDays: number;
  nowMs: number;
}

/**
 * Which backups to prune. Only this product's own scheduled/manual backups (`mc-backup-…`) are candidates;
 * uploads, safety copies and any other file are never pruned. Ordered by the time in the name (not the file's
 * mtime, which a copy or restore changes). The newest backup is never removed by the age rule, so a stopped
 * scheduler cannot age every backup away.
 */
export function selectForPruning<T extends RetentionCandidate>(files: readonly T[], rule: RetentionRule): T[] {
  const candidates = files
    .filter((file) => file.name.startsWith(BACKUP_PREFIX))
    .sort((a, b) => b.createdAtMs - a.createdAtMs || b.seq - a.seq || (a.name < b.name ? 1 : -1));
  const maxAgeMs = rule.maxAgeDays * 24 * 60 * 60 * 1000;
  return candidates.filter((file, index) => {
    if (index >= rule.count) {
      return true;
    }
    return index > 0 && rule.maxAgeDays > 0 && rule.nowMs - file.createdAtMs > maxAgeMs;
  });
}
