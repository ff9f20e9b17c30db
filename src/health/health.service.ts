import { HttpStatus, Inject, Injectable, Optional } from '@nestjs/common';
import type { Statement } from 'better-sqlite3';
import * as fsp from 'node:fs/promises';
import { ServiceState } from '../common/availability';
import { Clock } from '../common/clock';
import { AppConfig } from '../config/app-config';
import { SQLITE_HANDLE, SqliteHandle } from '../database/sqlite-handle';
import { OBSERVABILITY_OPTIONS, ObservabilityOptions } from '../observability/observability-options';
import { AUTO_BACKUP_TASK } from '../scheduler/schedule-timing';
import { TASK_RESULT_SQL, type TaskResult, taskResult } from '../scheduler/task-result';
import { SettingsService } from '../settings/settings.service';
import { BackupHealthState } from './backup-health-state';
import { DatabaseProbe } from './database-probe';
import type { HealthCheckDto, HealthResponseDto } from './health.dto';
import { LiveSchema } from './live-schema';
import { OffsiteHealthIndicator } from './offsite.indicator';
import { ReplicationProgress } from '../replication/replication-progress';
import type { Indicator, IndicatorResult } from './indicator';
import { replicationCheck } from './replication.indicator';

/** With auto-backup on, a last success older than this is `degraded` (a daily job plus two hours of slack). */
export const MAX_BACKUP_AGE_SECONDS = 26 * 60 * 60;
/** Free space beside the backups must hold this many copies of the last backup. */
export const DISK_HEADROOM_FACTOR = 2;

export interface HealthReport {
  httpStatus: HttpStatus;
  body: HealthResponseDto;
}

/**
 * One indicator's verdict. `down` makes the whole answer 503 `error`; `degraded` and `unknown` (the check could not
 * run, which says nothing of what it checks) make a 200 `degraded`.
 */
export type { Indicator, IndicatorResult };

async function statfsFreeBytes(dir: string): Promise<number> {
  const stats = await fsp.statfs(dir);
  return stats.bavail * stats.bsize;
}

/**
 * GET /api/health. Every call costs the same whatever the number of backups: a read of the
 * live database, two indexed rows (the auto-backup setting and the scheduler's state), one statfs, and state kept
 * current by events (BackupHealthState) and a scheduled probe (DatabaseProbe, LiveSchema). Nothing lists the backups
 * folder or runs a quick_check per call.
 *
 * Adding an indicator: one more entry in `indicators` (a name and a function returning an IndicatorResult).
 */
@Injectable()
export class HealthService {
  private readonly freeDiskBytes: (dir: string) => Promise<number>;
  private readonly indicators: ReadonlyArray<[string, Indicator]>;
  /**
   * Prepared once: a load balancer calls this endpoint every few seconds, and through TypeORM's query builder the
   * two reads cost more CPU and garbage than the rest of the check (a fifth of a call's CPU, measured with --cpu-prof).
   */
  private schemaRead: Statement | undefined;
  private autoBackupTaskRead: Statement | undefined;

  constructor(
    @Inject(SQLITE_HANDLE) private readonly db: SqliteHandle,
    private readonly settings: SettingsService,
    private readonly backups: BackupHealthState,
    private readonly probe: DatabaseProbe,
    private readonly schema: LiveSchema,
    private readonly state: ServiceState,
    private readonly config: AppConfig,
    private readonly clock: Clock,
    private readonly offsite: OffsiteHealthIndicator,
    @Optional() @Inject(OBSERVABILITY_OPTIONS) options?: ObservabilityOptions,
    @Optional() private readonly replication?: ReplicationProgress,
  ) {
    this.freeDiskBytes = options?.freeDiskBytes ?? statfsFreeBytes;
    this.indicators = [
      ['database', () => this.database()],
      ['disk', () => this.disk()],
      ['last_backup', () => this.lastBackup()],
      ['offsite', () => this.offsite.check()],
      ['replication', () => replicationCheck(this.replication?.read())],
    ];
  }

  /** `detailed`: the caller is an admin and may see sizes, times and messages; everyone else sees statuses. */
  async check(detailed = false): Promise<HealthReport> {
    if (this.state.shuttingDown) {
      return shuttingDown();
    }
    const results = await Promise.all(
      this.indicators.map(async ([name, indicator]): Promise<[string, IndicatorResult]> => {
        try {
          return [name, await indicator()];
        } catch {
          return [name, { status: 'degraded', message: 'The check itself failed' }];
        }
      }),
    );
    const checks: Record<string, HealthCheckDto> = {};
    for (const [name, result] of results) {
      checks[name] = detailed
        ? { status: result.status, ...(result.message ? { message: result.message } : {}), ...result.details }
        : { status: result.status };
    }
    const statuses = results.map(([, result]) => result.status);
    if (statuses.includes('down')) {
      return { httpStatus: HttpStatus.SERVICE_UNAVAILABLE, body: { status: 'error', checks } };
    }
    const degraded = statuses.includes('degraded') || statuses.includes('unknown');
    return { httpStatus: HttpStatus.OK, body: { status: degraded ? 'degraded' : 'ok', checks } };
  }

  /** A real read through the live connection, plus what the scheduled probe and the schema check found. */
  private database(): IndicatorResult {
    try {
      this.schemaRead ??= this.db.prepare('SELECT count(*) AS n FROM sqlite_schema');
      this.schemaRead.get();
    } catch {
      return { status: 'down', message: 'The database does not answer' };
    }
    const probe = this.probe.state;
    const details = {
      schema_version: this.schema.version,
      quick_check: probe.quickCheck,
      quick_check_at: probe.quickCheckAt,
      ...(probe.deletedFiles.length > 0 ? { deleted_files: probe.deletedFiles } : {}),
    };
    if (probe.status === 'error') {
      return { status: 'down', message: probe.message ?? 'The database probe failed', details };
    }
    if (probe.status === 'unknown') {
      // The main connection answered above; only the scheduled check could not run (retried within a minute).
      return {
        status: 'unknown',
        message: 'The database answers, but its scheduled check could not run; retrying within a minute',
        details: { ...details, reason: probe.notRunReason },
      };
    }
    if (this.schema.problems.length > 0) {
      return {
        status: 'degraded',
        message: `The live database's schema is not this application's: ${this.schema.problems.slice(0, 10).join('; ')}`,
        details,
      };
    }
    return { status: 'up', details };
  }

  private async disk(): Promise<IndicatorResult> {
    let free: number;
    try {
      free = await this.freeDiskBytes(this.config.backupsDir);
    } catch {
      return { status: 'degraded', message: 'Could not measure free disk space beside the backups' };
    }
    const lastSize = this.backups.lastBackupSize ?? 0;
    const required = DISK_HEADROOM_FACTOR * lastSize;
    const degraded = free < required;
    return {
      status: degraded ? 'degraded' : 'up',
      ...(degraded ? { message: 'Free disk space is under twice the size of the last backup' } : {}),
      details: { free_bytes: free, required_bytes: required, last_backup_size_bytes: this.backups.lastBackupSize },
    };
  }

  private async lastBackup(): Promise<IndicatorResult> {
    let autoBackup: boolean;
    let task: TaskResult | null;
    try {
      autoBackup = await this.settings.getBoolean('general.auto_backup');
      this.autoBackupTaskRead ??= this.db.prepare(TASK_RESULT_SQL);
      task = taskResult(this.autoBackupTaskRead.get(AUTO_BACKUP_TASK));
    } catch {
      return { status: 'degraded', message: 'Could not read the backup state' };
    }
    const successes = [task?.lastSuccessAt ?? null, this.backups.lastOwnBackupMs].filter(
      (value): value is number => value !== null,
    );
    const lastSuccessMs = successes.length > 0 ? Math.max(...successes) : null;
    const lastSuccessAt = lastSuccessMs === null ? null : Math.floor(lastSuccessMs / 1000);
    const age = lastSuccessAt === null ? null : Math.max(0, this.clock.nowSeconds() - lastSuccessAt);
    // The most recent attempt failed, until the next success: in this process (events), or a scheduled run
    // recorded before a restart.
    const failure =
      this.backups.lastFailure ??
      (task?.lastResultOk === false && task.lastResultAt !== null && task.lastResultAt > (lastSuccessMs ?? 0)
        ? { at: Math.floor(task.lastResultAt / 1000), reason: 'scheduled backup failed' }
        : null);
    const details = {
      auto_backup: autoBackup,
      last_success_at: lastSuccessAt,
      age_seconds: age,
      max_age_seconds: MAX_BACKUP_AGE_SECONDS,
      last_failure_at: failure?.at ?? null,
    };
    if (failure) {
      return { status: 'degraded', message: 'The most recent backup attempt failed', details };
    }
    if (autoBackup && (age === null || age > MAX_BACKUP_AGE_SECONDS)) {
      return {
        status: 'degraded',
        message:
          lastSuccessAt === null
            ? 'Auto-backup is on but no backup has succeeded yet'
            : 'Auto-backup is on but the last successful backup is over 26 hours old',
        details,
      };
    }
    return { status: 'up', details };
  }
}

/** Said to everyone: a load balancer or an operator needs nothing more to understand it. */
function shuttingDown(): HealthReport {
  return {
    httpStatus: HttpStatus.SERVICE_UNAVAILABLE,
    body: { status: 'error', checks: { service: { status: 'down', message: 'The service is shutting down' } } },
  };
}
