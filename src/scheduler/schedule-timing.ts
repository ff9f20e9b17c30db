import { CronTime } from 'cron';

export const AUTO_BACKUP_TASK = 'auto_backup';
export const DEFAULT_BACKUP_CRON = '0 3 * * *';
export const RESTORE_DRILL_TASK = 'restore_drill';
/** Sundays at 04:00 UTC: an hour after the default daily backup, so the drill tries a fresh one. */
export const RESTORE_DRILL_CRON = '0 4 * * 0';
export const SCHEDULE_TIME_ZONE = 'UTC';
const DAY_MS = 24 * 60 * 60 * 1000;

/** The next time `expression` fires strictly after `from`, in Unix ms (UTC). */
export function nextRunAfter(expression: string, from: Date): number {
  return new CronTime(expression, SCHEDULE_TIME_ZONE).getNextDateFrom(from, SCHEDULE_TIME_ZONE).toMillis();
}

/**
 * Whether start-up should make up for a missed daily run: auto-backup is on and the last success is more
 * than a day old (or there never was one). One catch-up, never one per missed day.
 */
export function shouldCatchUp(state: { enabled: boolean; lastSuccessAt: number | null; nowMs: number }): boolean {
  if (!state.enabled) {
    return false;
  }
  return state.lastSuccessAt === null || state.nowMs - state.lastSuccessAt > DAY_MS;
}
