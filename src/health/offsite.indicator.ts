import { Injectable } from '@nestjs/common';
import { Clock } from '../common/clock';
import { RemoteCopies } from '../common/remote-copies';
import type { IndicatorResult } from './health.service';

/** Uploads failing for longer than this make off-site `degraded`. */
export const OFFSITE_FAILING_SECONDS = 60 * 60;
/** The newest uploaded copy may lag the newest local backup by this much (a daily job plus slack). */
export const OFFSITE_MAX_LAG_SECONDS = 26 * 60 * 60;

/**
 * `checks.offsite`: `up` (or `off` when not configured), `degraded` while uploads have been failing for over an
 * hour, or when the newest uploaded copy is more than 26 hours older than the newest local backup. A local read of
 * the outbox: never a bucket request.
 */
@Injectable()
export class OffsiteHealthIndicator {
  constructor(
    private readonly remoteCopies: RemoteCopies,
    private readonly clock: Clock,
  ) {}

  check(): IndicatorResult {
    let progress;
    try {
      progress = this.remoteCopies.progress();
    } catch {
      return { status: 'degraded', message: 'Could not read the off-site outbox' };
    }
    if (!progress.configured) {
      return { status: 'up', details: { configured: false } };
    }
    const now = this.clock.nowSeconds();
    const failingFor = progress.failingSince === null ? null : Math.max(0, now - progress.failingSince);
    const lag =
      progress.newestBackupAt === null
        ? 0
        : progress.newestBackupAt - (progress.newestUploadedBackupAt ?? Number.NEGATIVE_INFINITY);
    const failing = failingFor !== null && failingFor > OFFSITE_FAILING_SECONDS;
    const behind = lag > OFFSITE_MAX_LAG_SECONDS;
    const details = {
      configured: true,
      pending: progress.pending,
      last_success_at: progress.lastUploadedAt,
      failing_since: progress.failingSince,
    };
    if (failing || behind) {
      return {
        status: 'degraded',
        message: failing
          ? 'Off-site uploads have been failing for over an hour'
          : 'The newest off-site copy is more than 26 hours older than the newest local backup',
        details,
      };
    }
    return { status: 'up', details };
  }
}
