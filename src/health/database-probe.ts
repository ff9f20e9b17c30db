import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy, Optional } from '@nestjs/common';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Clock } from '../common/clock';
import { OperationLock } from '../common/operation-lock';
import { AppConfig } from '../config/app-config';
import { OBSERVABILITY_OPTIONS, ObservabilityOptions } from '../observability/observability-options';
import type { DatabaseCheck } from '../sqlite/database-check';
import { runProbeWorker } from '../sqlite/snapshot';

/** How often the cheap probe (deleted -wal/-shm) runs. */
export const DEFAULT_SCAN_INTERVAL_MS = 10_000;
/** How often the quick_check runs (a worker thread reads the whole file), and the first one after start. */
export const DEFAULT_QUICK_CHECK_INTERVAL_MS = 10 * 60_000;
export const DEFAULT_FIRST_QUICK_CHECK_MS = 60_000;
/**
 * After a probe that could not run, the next try (checked on the next scan, so within this plus one scan interval:
 * under a minute with the defaults).
 */
export const DEFAULT_PROBE_RETRY_MS = 30_000;

export interface ProbeState {
  /**
   * `error` when the last probe found the database unsafe; `pending` before the first quick_check; `unknown` when
   * the last try could not run at all (it says nothing of the database; retried within a minute).
   */
  status: 'ok' | 'error' | 'pending' | 'unknown';
  message: string | null;
  /** Why the last try could not run (an error code or class), while `unknown`. */
  notRunReason: string | null;
  /** Unix seconds of the last try to run the quick_check, whether it ran or not. */
  triedAt: number | null;
  /** Unix seconds of the last quick_check, and its verdict. */
  quickCheckAt: number | null;
  quickCheck: string | null;
  /** Files of the live database the process still has open although they were deleted from the folder. */
  deletedFiles: string[];
}

/**
 * The database's part of health that is too costly per request, run on a schedule and read by
 * every health call: a quick_check in a worker thread on its own SQLite connection, and a scan of /proc/self/fd
 * (readlink only, nothing is opened) for the live database's -wal/-shm shown as "(deleted)": another process removed
 * them under the service, and from then on its writes go to a file nobody else sees.
 */
@Injectable()
export class DatabaseProbe implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(DatabaseProbe.name);
  private readonly scanIntervalMs: number;
  private readonly quickCheckIntervalMs: number;
  private readonly firstQuickCheckMs: number;
  private readonly retryMs: number;
  private readonly check: (file: string) => Promise<DatabaseCheck>;
  private timer: NodeJS.Timeout | undefined;
  private nextQuickCheckMs = 0;
  private running: Promise<void> | null = null;
  private stopped = false;
  private quickCheckError: string | null = null;
  private current: ProbeState = {
    status: 'pending',
    message: null,
    notRunReason: null,
    triedAt: null,
    quickCheckAt: null,
    quickCheck: null,
    deletedFiles: [],
  };

  constructor(
    private readonly config: AppConfig,
    private readonly clock: Clock,
    @Optional() @Inject(OBSERVABILITY_OPTIONS) options?: ObservabilityOptions,
    @Optional() private readonly lock?: OperationLock,
  ) {
    this.scanIntervalMs = options?.databaseProbe?.scanIntervalMs ?? DEFAULT_SCAN_INTERVAL_MS;
    this.quickCheckIntervalMs = options?.databaseProbe?.quickCheckIntervalMs ?? DEFAULT_QUICK_CHECK_INTERVAL_MS;
    this.firstQuickCheckMs = options?.databaseProbe?.firstQuickCheckMs ?? DEFAULT_FIRST_QUICK_CHECK_MS;
    this.retryMs = options?.databaseProbe?.retryMs ?? DEFAULT_PROBE_RETRY_MS;
    const nativeBinding = options?.databaseProbe?.nativeBinding;
    this.check =
      options?.databaseProbe?.check ?? ((file) => runProbeWorker(file, { busyTimeoutMs: 5000, nativeBinding }));
  }

  get state(): ProbeState {
    return this.current;
  }

  onApplicationBootstrap(): void {
    this.nextQuickCheckMs = this.clock.nowMs() + this.firstQuickCheckMs;
    this.scanDeleted();
    this.timer = setInterval(() => void this.tick(), this.scanIntervalMs);
    this.timer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  /** One round: the fd scan always, the quick_check when it is due. Never overlaps itself. */
  tick(): Promise<void> {
    this.running ??= this.round().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async round(): Promise<void> {
    this.scanDeleted();
    if (this.stopped || this.clock.nowMs() < this.nextQuickCheckMs) {
      return;
    }
    if (this.lock !== undefined && this.lock.running !== null) {
      // Left due for the next scan: a backup or restore reads the same file on the same cores, a backup checks what
      // it copies, and a restore is about to replace what this would check.
      return;
    }
    this.nextQuickCheckMs = this.clock.nowMs() + this.quickCheckIntervalMs;
    let notRun: string | null = null;
    try {
      const reply = await this.check(path.resolve(this.config.dbPath));
      if (reply.outcome === 'not_run') {
        notRun = reply.errorCode ?? 'Error';
        this.logger.warn(`Database probe could not check the database (${notRun}): ${reply.quickCheck}`);
      } else {
        this.current = { ...this.current, quickCheckAt: this.clock.nowSeconds(), quickCheck: reply.quickCheck };
        this.quickCheckError = reply.ok ? null : `quick_check of the live database failed: ${reply.quickCheck}`;
        if (!reply.ok) {
          this.logger.error(this.quickCheckError);
        }
      }
    } catch (error) {
      // The worker did not start or died (e.g. its native module replaced under the running service).
      notRun = error instanceof Error && /^[A-Za-z]{1,40}$/.test(error.name) ? error.name : 'Error';
      this.logger.warn(`Database probe could not run: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (notRun !== null) {
      // A failure to check is not a finding: the last verdict stands, and the next try comes soon.
      this.nextQuickCheckMs = this.clock.nowMs() + this.retryMs;
    }
    this.current = { ...this.current, notRunReason: notRun, triedAt: this.clock.nowSeconds() };
    this.update();
  }

  /** readlink on every descriptor of this process; Linux only (elsewhere the scan finds nothing). */
  scanDeleted(): void {
    const live = path.resolve(this.config.dbPath);
    const watched = new Set([live, `${live}-wal`, `${live}-shm`, `${live}-journal`]);
    const deleted = new Set<string>();
    let fds: string[];
    try {
      fds = fs.readdirSync('/proc/self/fd');
    } catch {
      return;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        continue;
      }
      const suffix = ' (deleted)';
      if (target.endsWith(suffix) && watched.has(target.slice(0, -suffix.length))) {
        deleted.add(path.basename(target.slice(0, -suffix.length)));
      }
    }
    const deletedFiles = [...deleted].sort();
    if (deletedFiles.length > 0 && this.current.deletedFiles.length === 0) {
      this.logger.error(
        `The service has ${deletedFiles.join(', ')} open, but they were deleted from the folder (another process ` +
          'removed them): writes may be lost. Restart the service.',
      );
    }
    this.current = { ...this.current, deletedFiles };
    this.update();
  }

  private update(): void {
    const deleted = this.current.deletedFiles;
    const message =
      deleted.length > 0
        ? `${deleted.join(', ')} open in the service ${deleted.length > 1 ? 'were' : 'was'} deleted by another process: writes may be lost; restart the service`
        : this.quickCheckError;
    const status =
      message !== null
        ? 'error'
        : this.current.notRunReason !== null
          ? 'unknown'
          : this.current.quickCheckAt === null
            ? 'pending'
            : 'ok';
    this.current = { ...this.current, status, message };
  }
}
