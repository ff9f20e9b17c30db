import type { ReplicationProgress } from '../replication/replication-progress';
import type { IndicatorResult } from './indicator';

/** Replication lagging behind by more than this is `degraded`. */
export const REPLICATION_MAX_LAG_MS = 60_000;

/** `checks.replication`: `degraded` while the lag is over a minute or streaming failed; `up` (off) otherwise. */
export function replicationCheck(view: ReturnType<ReplicationProgress['read']> | undefined): IndicatorResult {
  if (view === undefined || !view.enabled) {
    return { status: 'up', details: { enabled: false, replication: 'off' } };
  }
  const details = { enabled: true, replication: view.status, lag_ms: view.lagMs, pending_bytes: view.pendingBytes };
  if (view.status === 'failed' || view.lagMs > REPLICATION_MAX_LAG_MS) {
    return {
      status: 'degraded',
      message: view.status === 'failed' ? 'Replication is failing' : 'Replication lags by more than a minute',
      details,
    };
  }
  return { status: 'up', details };
}
