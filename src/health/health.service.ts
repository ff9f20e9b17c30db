import { HttpStatus, Inject, Injectable, Optional, ServiceUnavailableException } from '@nestjs/common';
import { HealthCheckResult, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import * as fsp from 'node:fs/promises';
import { ServiceState } from '../common/availability';
import { Clock } from '../common/clock';
import { AppConfig } from '../config/app-config';
import { SQLITE_HANDLE, SqliteHandle } from '../database/sqlite-handle';
import { BackupStatus, BackupStatusSnapshot } from '../observability/backup-status';
import { OBSERVABILITY_OPTIONS, ObservabilityOptions } from '../observability/observability-options';
import { SettingsService } from '../settings/settings.service';
import type { HealthCheckDto, HealthResponseDto } from './health.dto';
import { OffsiteHealthIndicator } from './offsite.indicator';

/** With auto-backup on, a last success older than this is `degraded` (a daily job plus two hours of slack). */
export const MAX_BACKUP_AGE_SECONDS = 26 * 60 * 60;
/** Free space beside the backups must hold this many copies of the last backup. */
export const DISK_HEADROOM_FACTOR = 2;

export interface HealthReport {
  httpStatus: HttpStatus;
  body: HealthResponseDto;
}

async function statfsFreeBytes(dir: string): Promise<number> {
  const stats = await fsp.statfs(dir);
  return stats.bavail * stats.bsize;
}

/**
 * GET /api/health on terminus. The database decides between 200 and 503; disk space and backup age can only
 * make a 200 `degraded` (terminus knows up and down only, so those indicators report up with a `degraded`
 * flag that is folded into the status here). While shutting down: 503, so a load balancer drains.
 */
@Injectable()
export class HealthService {
  private readonly freeDiskBytes: (dir: string) => Promise<number>;

  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    @Inject(SQLITE_HANDLE) private readonly db: SqliteHandle,
    private readonly settings: SettingsService,
    private readonly backups: BackupStatus,
    private readonly state: ServiceState,
    private readonly config: AppConfig,
    private readonly clock: Clock,
    private readonly offsite: OffsiteHealthIndicator,
    @Optional() @Inject(OBSERVABILITY_OPTIONS) options?: ObservabilityOptions,
  ) {
    this.freeDiskBytes = options?.freeDiskBytes ?? statfsFreeBytes;
  }

  async check(): Promise<HealthReport> {
    if (this.state.shuttingDown) {
      return shuttingDown();
    }
    // One read of the folder and scheduler state for both indicators; null when it fails (database down).
    const status = this.backups.read().catch(() => null);
    let result: HealthCheckResult;
    try {
      result = await this.health.check([
        () => this.database(),
        async () => this.disk(await status),
        async () => this.lastBackup(await status),
        () => this.offsite.check(),
      ]);
    } catch (error) {
      if (!(error instanceof ServiceUnavailableException)) {
        throw error;
      }
      const failed = error.getResponse() as HealthCheckResult;
      if (failed.status === 'shutting_down') {
        return shuttingDown();
      }
      return {
        httpStatus: HttpStatus.SERVICE_UNAVAILABLE,
        body: { status: 'error', checks: toChecks(failed.details) },
      };
    }
    const checks = toChecks(result.details);
    const degraded = Object.values(checks).some((check) => check.status === 'degraded');
    return { httpStatus: HttpStatus.OK, body: { status: degraded ? 'degraded' : 'ok', checks } };
  }

  private database() {
    const indicator = this.indicators.check('database');
    try {
      this.db.prepare('SELECT 1').get();
      return indicator.up();
    } catch {
      return indicator.down({ message: 'The database does not answer' });
    }
  }

  private async disk(status: BackupStatusSnapshot | null) {
    const indicator = this.indicators.check('disk');
    let free: number;
    try {
      free = await this.freeDiskBytes(this.config.backupsDir);
    } catch {
      return indicator.up({ degraded: true, message: 'Could not measure free disk space beside the backups' });
    }
    const lastSize = status?.lastBackupSize ?? 0;
    const required = DISK_HEADROOM_FACTOR * lastSize;
    const degraded = free < required;
    return indicator.up({
      degraded,
      ...(degraded ? { message: 'Free disk space is under twice the size of the last backup' } : {}),
      free_bytes: free,
      required_bytes: required,
      last_backup_size_bytes: status?.lastBackupSize ?? null,
    });
  }

  private async lastBackup(status: BackupStatusSnapshot | null) {
    const indicator = this.indicators.check('last_backup');
    let autoBackup: boolean;
    try {
      autoBackup = await this.settings.getBoolean('general.auto_backup');
    } catch {
      return indicator.up({ degraded: true, message: 'Could not read the backup state' });
    }
    if (status === null) {
      return indicator.up({ degraded: true, auto_backup: autoBackup, message: 'Could not read the backup state' });
    }
    const lastSuccessAt = status.lastSuccessMs === null ? null : Math.floor(status.lastSuccessMs / 1000);
    const age = lastSuccessAt === null ? null : Math.max(0, this.clock.nowSeconds() - lastSuccessAt);
    const tooOld = age === null || age > MAX_BACKUP_AGE_SECONDS;
    const degraded = autoBackup && tooOld;
    return indicator.up({
      degraded,
      ...(degraded
        ? {
            message:
              lastSuccessAt === null
                ? 'Auto-backup is on but no backup has succeeded yet'
                : 'Auto-backup is on but the last successful backup is over 26 hours old',
          }
        : {}),
      auto_backup: autoBackup,
      last_success_at: lastSuccessAt,
      age_seconds: age,
      max_age_seconds: MAX_BACKUP_AGE_SECONDS,
    });
  }
}

function shuttingDown(): HealthReport {
  return {
    httpStatus: HttpStatus.SERVICE_UNAVAILABLE,
    body: { status: 'error', checks: { service: { status: 'down', message: 'The service is shutting down' } } },
  };
}

/** Terminus details to our checks: the `degraded` flag becomes the status, and is not repeated. */
function toChecks(details: HealthCheckResult['details']): Record<string, HealthCheckDto> {
  const checks: Record<string, HealthCheckDto> = {};
  for (const [key, value] of Object.entries(details)) {
    const { degraded, status, ...rest } = value as { degraded?: unknown; status: 'up' | 'down' };
    checks[key] = { ...rest, status: degraded === true ? 'degraded' : status };
  }
  return checks;
}
