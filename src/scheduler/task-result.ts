/**
 * A scheduled task's last outcome read straight from `scheduler_tasks` (see SchedulerTaskEntity), for readers on a
 * hot path that prepare the statement once instead of going through TypeORM (health: every call of a monitor).
 */
export const TASK_RESULT_SQL =
  'SELECT last_success_at, last_result_ok, last_result_at FROM scheduler_tasks WHERE id = ?';

/** Times in Unix ms, as the entity stores them. */
export interface TaskResult {
  lastSuccessAt: number | null;
  lastResultOk: boolean | null;
  lastResultAt: number | null;
}

/** The row TASK_RESULT_SQL returned, or null when the task has no row yet. */
export function taskResult(raw: unknown): TaskResult | null {
  if (raw === undefined) {
    return null;
  }
  const row = raw as { last_success_at: number | null; last_result_ok: number | null; last_result_at: number | null };
  return {
    lastSuccessAt: row.last_success_at,
    // SQLite has no boolean: TypeORM stores the entity's boolean as 0 or 1.
    lastResultOk: row.last_result_ok === null ? null : row.last_result_ok !== 0,
    lastResultAt: row.last_result_at,
  };
}
