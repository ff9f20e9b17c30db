import { Injectable, Logger, OnModuleDestroy, OnModuleInit, Optional } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { Subscription } from 'rxjs';
import { Clock } from '../common/clock';
import { OpsEvent, OpsEvents } from '../common/ops-events';
import { RemoteCopies } from '../common/remote-copies';
import { ReplicationProgress } from '../replication/replication-progress';
import { BackupStatus } from './backup-status';
import { routePattern } from './request-context';

const BACKUP_DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];
const HTTP_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * The Prometheus series of this app on its own Registry (not prom-client's global one, so several apps in one
 * process, as in the tests, never collide). Backup and restore series move on OpsEvents; the file count is
 * read from the folder at scrape time; the last success is loaded from the database at start.
 */
@Injectable()
export class MetricsService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(MetricsService.name);
  readonly registry = new Registry();
  private subscription?: Subscription;

  private readonly backupLastSuccess = new Gauge({
    name: 'mc_backup_last_success_timestamp_seconds',
    help: 'Unix time of the last successful backup (0 when there never was one)',
    registers: [this.registry],
  });
  private readonly backupDuration = new Histogram({
    name: 'mc_backup_duration_seconds',
    help: 'How long successful backups took',
    buckets: BACKUP_DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly backupSize = new Gauge({
    name: 'mc_backup_size_bytes',
    help: 'Size of the last backup made',
    registers: [this.registry],
  });
  private readonly backupFailures = new Counter({
    name: 'mc_backup_failures_total',
    help: 'Backups that failed since the process started',
    registers: [this.registry],
  });
  private readonly backupsPruned = new Counter({
    name: 'mc_backups_pruned_total',
    help: 'Backup files removed by retention since the process started',
    registers: [this.registry],
  });
  private readonly restores = new Counter({
    name: 'mc_restores_total',
    help: 'Restores since the process started, by result (success, failure)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  private readonly restoreFailures = new Counter({
    name: 'mc_restore_failures_total',
    help: 'Restores that failed since the process started',
    registers: [this.registry],
  });
  private readonly drills = new Counter({
    name: 'mc_restore_drills_total',
    help: 'Restore drills since the process started, by result (success, failure)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  private readonly drillLastSuccess = new Gauge({
    name: 'mc_restore_drill_last_success_timestamp_seconds',
    help: 'Unix time of the last successful restore drill in this process (0 when none)',
    registers: [this.registry],
  });
  private readonly offsiteLastSuccess = new Gauge({
    name: 'mc_offsite_last_success_timestamp_seconds',
    help: 'Unix time of the last successful off-site upload (0 when none, or off-site is off)',
    registers: [this.registry],
  });
  private readonly offsiteFailures = new Counter({
    name: 'mc_offsite_failures_total',
    help: 'Off-site upload attempts that failed since the process started',
    registers: [this.registry],
  });
  private readonly httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by method, route pattern and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: HTTP_DURATION_BUCKETS,
    registers: [this.registry],
  });

  constructor(
    private readonly events: OpsEvents,
    private readonly status: BackupStatus,
    private readonly clock: Clock,
    private readonly offsite: RemoteCopies,
    @Optional() private readonly replication?: ReplicationProgress,
  ) {
    // Read at scrape time; an unreadable folder keeps the last values rather than failing the whole scrape.
    const files = () => this.backupFiles();
    new Gauge({
      name: 'mc_backups_count',
      help: 'Backup files on disk (every kind), counted at scrape time',
      registers: [this.registry],
      async collect() {
        const read = await files();
        if (read !== null) {
          this.set(read.count);
        }
      },
    });
    new Gauge({
      name: 'mc_backups_bytes',
      help: 'Total size of the backup files on disk, at scrape time',
      registers: [this.registry],
      async collect() {
        const read = await files();
        if (read !== null) {
          this.set(read.totalBytes);
        }
      },
    });
    const progress = this.offsite;
    const lastSuccess = this.offsiteLastSuccess;
    new Gauge({
      name: 'mc_offsite_pending',
      help: 'Backups waiting for their off-site upload (pending or failing), at scrape time',
      registers: [this.registry],
      collect() {
        const read = progress.progress();
        this.set(read.pending);
        // Also survives a restart: read from the outbox, not only moved by events.
        lastSuccess.set(read.lastUploadedAt ?? 0);
      },
    });
    this.replicationSeries();
    // Series with labels appear only once set: start them at 0, so increase() sees the first failure.
    for (const result of ['success', 'failure']) {
      this.restores.labels(result).inc(0);
      this.drills.labels(result).inc(0);
    }
    collectDefaultMetrics({ register: this.registry });
  }

  /** Read from the shipper at scrape time (0 while replication is off). */
  private replicationSeries(): void {
    const read = () => this.replication?.read();
    new Gauge({
      name: 'mc_replication_lag_seconds',
      help: 'Age of the oldest commit not yet in the bucket, in seconds (0 when nothing waits)',
      registers: [this.registry],
      collect() {
        this.set((read()?.lagMs ?? 0) / 1000);
      },
    });
    new Gauge({
      name: 'mc_replication_pending_bytes',
      help: 'Bytes of replicated changes waiting on local disk for the bucket',
      registers: [this.registry],
      collect() {
        this.set(read()?.pendingBytes ?? 0);
      },
    });
    new Counter({
      name: 'mc_replication_generations_total',
      help: 'Replication generations started since the process started',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(read()?.generationsTotal ?? 0);
      },
    });
    new Counter({
      name: 'mc_replication_failures_total',
      help: 'Replication rounds, snapshots or uploads that failed since the process started',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(read()?.failuresTotal ?? 0);
      },
    });
  }

  /** A restart must not reset the last success to 0 (an age alert would fire at once). */
  async onModuleInit(): Promise<void> {
    try {
      const status = await this.status.read();
      if (status.lastSuccessMs !== null) {
        this.backupLastSuccess.set(Math.floor(status.lastSuccessMs / 1000));
      }
      if (status.lastBackupSize !== null) {
        this.backupSize.set(status.lastBackupSize);
      }
    } catch (error) {
      this.logger.warn(`Could not read the last backup at start: ${String(error)}`);
    }
    this.subscription = this.events.subscribe((event) => this.record(event));
  }

  onModuleDestroy(): void {
    this.subscription?.unsubscribe();
  }

  private async backupFiles(): Promise<{ count: number; totalBytes: number } | null> {
    try {
      return await this.status.files();
    } catch (error) {
      this.logger.warn(`Could not list the backups folder for metrics: ${String(error)}`);
      return null;
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  record(event: OpsEvent): void {
    switch (event.type) {
      case 'backup_succeeded':
        this.backupLastSuccess.set(this.clock.nowSeconds());
        this.backupDuration.observe(event.durationMs / 1000);
        this.backupSize.set(event.size);
        break;
      case 'backup_failed':
        this.backupFailures.inc();
        break;
      case 'backup_pruned':
        this.backupsPruned.inc();
        break;
      case 'restore_succeeded':
        this.restores.labels('success').inc();
        break;
      case 'restore_failed':
        this.restores.labels('failure').inc();
        this.restoreFailures.inc();
        break;
      case 'drill_succeeded':
        this.drills.labels('success').inc();
        this.drillLastSuccess.set(this.clock.nowSeconds());
        break;
      case 'drill_failed':
        this.drills.labels('failure').inc();
        break;
      case 'offsite_uploaded':
        this.offsiteLastSuccess.set(this.clock.nowSeconds());
        break;
      case 'offsite_failed':
        this.offsiteFailures.inc();
        break;
    }
  }

  /** Express middleware: observes every request when its response finishes, labelled by route pattern. */
  readonly httpMiddleware = (req: Request, res: Response, next: NextFunction): void => {
    const started = process.hrtime.bigint();
    res.once('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.httpDuration.observe(
        { method: req.method, route: routePattern(req), status: String(res.statusCode) },
        seconds,
      );
    });
    next();
  };
}
