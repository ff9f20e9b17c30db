import { Injectable } from '@nestjs/common';
import { Clock } from '../common/clock';
import { RemoteCopies } from '../common/remote-copies';
import type { IndicatorResult } from './indicator';

/** Uploads failing for longer than this make off-site `degraded`. */
export const OFFSITE_FAILING_SECONDS = 60 * 60;
/** The newest uploaded copy may lag the newest local backup by this much (a daily job plus slack). */
export const OFFSITE_MAX_LAG_SECONDS = 26 * 60 * 60;

/**
 * `checks.offsite`: `up` (or `off` when not configured), `degraded` while uploads have been failing for over an
 * hour, or when the newest copy off-site is more than 26 hours older than the newest local backup. The newest
 * copy is the newer of this machine's uploads and what the bucket was last seen to hold (after a recovery on a
 * bare machine the outbox knows nothing yet). A local read: never a bucket request.
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
    const failing = failingFor !== null && failingFor > OFFSITE_FAILING_SECONDS;
    // With no copy anywhere yet, a first backup waiting for its upload is not "behind" until it has waited long.
    const behind =
      progress.newestBackupAt !== null &&
      (progress.newestUploadedBackupAt === null
        ? now - (progress.oldestWaitingSince ?? now) > OFFSITE_MAX_LAG_SECONDS
        : progress.newestBackupAt - progress.newestUploadedBackupAt > OFFSITE_MAX_LAG_SECONDS);
    const details = {
      configured: true,
      pending: progress.pending,
      last_success_at: progress.lastUploadedAt,
      failing_since: progress.failingSince,
      newest_copy: progress.newestCopy?.name ?? null,
      newest_copy_at: progress.newestUploadedBackupAt,
    };
    if (failing || behind) {
      return {
        status: 'degraded',
        message: failing
          ? 'Off-site uploads have been failing for over an hour'
          : progress.newestUploadedBackupAt === null
            ? 'No off-site copy yet, and a backup has waited more than 26 hours for its upload'
            : 'The newest off-site copy is more than 26 hours older than the newest local backup',
        details,
      };
    }
    return { status: 'up', details };
  }
}
