import {
  BeforeApplicationShutdown,
  HttpStatus,
  Inject,
  Injectable,
  Logger,
  OnModuleDestroy,
  OnModuleInit,
} from '@nestjs/common';
import { watch, type FSWatcher } from 'node:fs';
import type { Subscription } from 'rxjs';
import { AuditService, SYSTEM_ACTORS } from '../audit/audit.service';
import { BackupFiles } from '../backups/backup-files';
import { SAFETY_PREFIX, validateBackupName } from '../backups/backup-name';
import { ApiError } from '../common/api-error';
import { Clock } from '../common/clock';
import { OperationLock } from '../common/operation-lock';
import { OpsEvents } from '../common/ops-events';
import { RemoteCopies } from '../common/remote-copies';
import { BucketRetention } from './bucket-retention';
import type { OffsiteBucket } from './offsite-bucket';
import { NOT_CONFIGURED, OFFSITE_BUCKET, reasonOf } from './offsite-common';
import { OffsiteOutbox, type OutboxRow } from './offsite-outbox';
import { OffsiteTracker } from './offsite-tracker';
import { createdAtOf, UploadPipeline } from './upload-pipeline';
import type { RemoteSyncDto } from './dto/offsite.dto';

/**
 * How often the worker looks at the local outbox anyway: the safety net behind the events and the folder watch
 * (retries are scheduled by their own back-off). Never the bucket.
 */
const OUTBOX_POLL_MS = 5 * 60 * 1000;
/** After a backup appears in the folder, when to look for its outbox row (the other process queues it just after). */
const NOTICED_DELAYS_MS = [500, 3000];

type UploadResult = 'uploaded' | 'failed' | 'interrupted';

/** What one call of {@link UploadWorker.uploadPendingNow} saw happen. */
class Tally {
  readonly uploaded = new Set<string>();
  readonly failed = new Set<string>();

  record(name: string, result: UploadResult): void {
    if (result === 'uploaded') {
      this.uploaded.add(name);
    } else if (result === 'failed') {
      this.failed.add(name);
    }
  }
}

/**
 * The upload worker: queues every published backup (listening on OpsEvents; `src/backups` knows nothing of this
 * module), uploads what is due one backup at a time with back-off, and applies bucket retention after each
 * upload. The timers run only in the service (see {@link start}); the CLI drains on demand with
 * {@link uploadPendingNow}.
 */
@Injectable()
export class UploadWorker implements OnModuleInit, OnModuleDestroy, BeforeApplicationShutdown {
  private readonly logger = new Logger(UploadWorker.name);
  private subscription?: Subscription;
  /** True once the service started the worker: only then do timers schedule drains. */
  private running = false;
  private draining: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly stopping = new AbortController();
  private watcher: FSWatcher | null = null;
  private readonly noticeTimers = new Set<NodeJS.Timeout>();
  private readonly tallies = new Set<Tally>();
  private starting: Promise<void> | null = null;

  constructor(
    @Inject(OFFSITE_BUCKET) private readonly bucket: OffsiteBucket | null,
    private readonly pipeline: UploadPipeline,
    private readonly retention: BucketRetention,
    private readonly outbox: OffsiteOutbox,
    private readonly files: BackupFiles,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly events: OpsEvents,
    private readonly remoteCopies: RemoteCopies,
    private readonly tracker: OffsiteTracker,
    private readonly lock: OperationLock,
  ) {}

  get configured(): boolean {
    return this.bucket !== null;
  }

  onModuleInit(): void {
    if (!this.configured) {
      return;
    }
    this.remoteCopies.attach(this.tracker);
    // Synchronous on purpose: the row exists before the backup's request goes on to local retention.
    this.subscription = this.events.subscribe((event) => {
      if ((event.type === 'backup_succeeded' || event.type === 'backup_imported') && this.eligible(event.name)) {
        this.outbox.enqueue(event.name, createdAtOf(event.name, this.clock));
        this.kick();
      }
    });
  }

  onModuleDestroy(): void {
    this.subscription?.unsubscribe();
    this.bucket?.destroy();
  }

  /** Stops the worker: an upload in flight is aborted (its multipart upload too) and stays queued. */
  async beforeApplicationShutdown(): Promise<void> {
    this.running = false;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.watcher?.close();
    this.watcher = null;
    for (const timer of this.noticeTimers) {
      clearTimeout(timer);
    }
    this.noticeTimers.clear();
    this.stopping.abort();
    await this.starting?.catch(() => undefined);
    await this.draining?.catch(() => undefined);
  }

  /**
   * The service's worker, at start-up: aborts multipart uploads a killed process left, queues every local backup
   * the outbox does not know (a crash between publishing and queueing loses nothing), forgets rows of files that
   * are gone, notes what the bucket holds (for health, after a recovery on a bare machine), watches the backups
   * folder for backups other processes publish, and tries everything waiting now (a restart is often what fixed
   * the bucket).
   */
  start(): Promise<void> {
    if (!this.configured || this.running || this.stopping.signal.aborted) {
      return this.starting ?? Promise.resolve();
    }
    this.running = true;
    this.starting = this.startUp();
    return this.starting;
  }

  /**
   * Each step may outlive a shutdown that began meanwhile (a stop right after a start, a bucket that answers late),
   * so each checks before it touches the outbox, whose database closes with the application.
   */
  private async startUp(): Promise<void> {
    try {
      const aborted = await this.bucket!.abortStaleUploads();
      if (aborted > 0) {
        this.logger.warn(`Aborted ${aborted} interrupted multipart upload(s) in the bucket`);
      }
    } catch (error) {
      if (!this.stopping.signal.aborted) {
        this.logger.warn(`Could not look for interrupted multipart uploads: ${reasonOf(error)}`);
      }
    }
    if (this.stopping.signal.aborted) {
      return;
    }
    await this.reconcile();
    if (this.stopping.signal.aborted) {
      return;
    }
    await this.watchFolder();
    this.outbox.makeAllDue();
    this.kick();
    await this.tracker.refresh();
  }

  /**
   * A backup the CLI (another process) publishes is queued by that process, in this database; this process learns
   * of it through the folder (inotify where there is one), not on the next poll.
   */
  private async watchFolder(): Promise<void> {
    try {
      await this.files.ensureDir();
      if (!this.running) {
        // Shut down meanwhile.
        return;
      }
      this.watcher = watch(this.files.dir, { persistent: false }, (_event, filename) => {
        if (typeof filename === 'string' && this.eligible(filename)) {
          this.noticed();
        }
      });
      this.watcher.on('error', (error: unknown) => {
        this.logger.warn(`Stopped watching the backups folder (${reasonOf(error)}); the outbox poll goes on`);
        this.watcher?.close();
        this.watcher = null;
      });
    } catch (error) {
      this.logger.warn(`Cannot watch the backups folder (${reasonOf(error)}); the outbox poll goes on`);
    }
  }

  private noticed(): void {
    if (this.noticeTimers.size > 0) {
      return;
    }
    for (const delay of NOTICED_DELAYS_MS) {
      const timer = setTimeout(() => {
        this.noticeTimers.delete(timer);
        this.kick();
      }, delay);
      timer.unref();
      this.noticeTimers.add(timer);
    }
  }

  /**
   * POST /api/backup/remote/sync and the CLI: tries every waiting upload now, back-off or not, whether or not the
   * worker's timers run in this process, and counts the outcome.
   */
  async uploadPendingNow(): Promise<RemoteSyncDto> {
    if (!this.configured) {
      throw new ApiError(HttpStatus.BAD_REQUEST, NOT_CONFIGURED);
    }
    await this.draining?.catch(() => undefined);
    const tally = new Tally();
    this.tallies.add(tally);
    try {
      this.outbox.makeAllDue();
      await this.drain();
    } finally {
      this.tallies.delete(tally);
    }
    const stillWaiting = this.outbox.waiting().filter((row) => !tally.failed.has(row.name));
    return { uploaded: tally.uploaded.size, pending: stillWaiting.length, failed: tally.failed.size };
  }

  private async reconcile(): Promise<void> {
    const local = await this.files.list();
    if (this.stopping.signal.aborted) {
      return;
    }
    const present = new Set(local.map((file) => file.name));
    let queued = 0;
    for (const file of local) {
      if (this.eligible(file.name) && this.outbox.enqueue(file.name, Math.floor(file.createdAtMs / 1000))) {
        queued++;
      }
    }
    let forgotten = 0;
    for (const row of this.outbox.all()) {
      if (!present.has(row.name)) {
        this.outbox.remove(row.name);
        forgotten++;
      }
    }
    if (queued > 0 || forgotten > 0) {
      this.logger.log(`Off-site outbox: queued ${queued} local backup(s), forgot ${forgotten} no longer on disk`);
    }
  }

  private eligible(name: string): boolean {
    return !name.startsWith(SAFETY_PREFIX) && validateBackupName(name).ok;
  }

  /** Starts a drain soon (never inside the caller's own work). */
  private kick(): void {
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (!this.running) {
      return;
    }
    if (this.timer !== null) {
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(
      () => {
        this.timer = null;
        void this.drain();
      },
      Math.max(0, Math.min(delayMs, OUTBOX_POLL_MS)),
    );
    this.timer.unref();
  }

  /** Uploads what is due, one backup at a time; a second call during a drain runs once more after it. */
  private drain(): Promise<void> {
    if (this.draining !== null) {
      this.again = true;
      return this.draining;
    }
    this.draining = (async () => {
      do {
        this.again = false;
        // One row at a time, asking again after each: a backup published meanwhile goes next (newest first).
        const tried = new Set<string>();
        for (;;) {
          if (this.stopping.signal.aborted) {
            return;
          }
          const row = this.outbox.waiting({ dueAtMs: this.clock.nowMs() }).find((r) => !tried.has(r.name));
          if (row === undefined) {
            break;
          }
          tried.add(row.name);
          const result = await this.uploadOne(row);
          for (const tally of this.tallies) {
            tally.record(row.name, result);
          }
        }
      } while (this.again && !this.stopping.signal.aborted);
    })()
      .catch((error: unknown) => this.logger.error(`Off-site worker failed: ${reasonOf(error)}`))
      .finally(() => {
        this.draining = null;
        const due = this.outbox.nextDueMs();
        this.schedule(due === null ? OUTBOX_POLL_MS : due - this.clock.nowMs());
      });
    return this.draining;
  }

  private async uploadOne(row: OutboxRow): Promise<UploadResult> {
    const { name } = row;
    const started = performance.now();
    await this.outboxWritable();
    const stat = await this.files.statBackup(name);
    if (stat === null) {
      // Deleted before it could be copied (the delete's audit row says so): nothing left to send.
      this.outbox.remove(name);
      await this.failed(name, 'LOCAL_FILE_GONE', row.attempts + 1, null);
      return 'failed';
    }
    try {
      const outcome = await this.pipeline.upload(name, stat.size, row, this.stopping.signal);
      await this.outboxWritable();
      this.outbox.markUploaded(name, outcome);
      const durationMs = performance.now() - started;
      this.logger.log(
        `Off-site copy of ${name}: ${outcome.objectSize} bytes in ${Math.round(durationMs)} ms` +
          (outcome.alreadyThere ? ' (already in the bucket)' : ''),
      );
      await this.audit.record({
        action: 'offsite_upload',
        actor: SYSTEM_ACTORS.system,
        targetType: 'backup',
        targetId: name,
        detail: {
          name,
          object: outcome.objectName,
          size: outcome.size,
          object_size: outcome.objectSize,
          sha256: outcome.sha256,
          object_sha256: outcome.objectSha256,
          encrypted: outcome.encrypted,
          already_there: outcome.alreadyThere,
          duration_ms: Math.round(durationMs),
        },
      });
      this.events.emit({ type: 'offsite_uploaded', name, size: outcome.size, durationMs });
    } catch (error) {
      if (this.stopping.signal.aborted) {
        this.logger.warn(`Off-site copy of ${name} interrupted by shutdown; it stays queued`);
        return 'interrupted';
      }
      const reason = reasonOf(error);
      await this.outboxWritable();
      const attempts = this.outbox.markFailed(name, reason);
      await this.failed(name, reason, attempts, this.outbox.get(name)?.next_attempt_at_ms ?? null);
      return 'failed';
    }
    await this.retention.prune({ keep: name });
    return 'uploaded';
  }

  /**
   * The outbox is written on the shared connection, synchronously: while a restore holds the live database's write
   * lock, such a write would freeze the event loop for the busy timeout and then fail. Wait for the restore instead.
   */
  private async outboxWritable(): Promise<void> {
    if (this.lock.writesHeld) {
      await this.lock.restoreFinished();
    }
  }

  private async failed(name: string, reason: string, attempts: number, nextAttemptAtMs: number | null): Promise<void> {
    this.logger.warn(
      `Off-site copy of ${name} failed (attempt ${attempts}): ${reason}` +
        (nextAttemptAtMs === null ? '' : `; next try at ${new Date(nextAttemptAtMs).toISOString()}`),
    );
    await this.audit.record({
      action: 'offsite_failed',
      actor: SYSTEM_ACTORS.system,
      targetType: 'backup',
      targetId: name,
      detail: {
        name,
        reason,
        attempts,
        next_attempt_at: nextAttemptAtMs === null ? null : Math.floor(nextAttemptAtMs / 1000),
      },
    });
    this.events.emit({ type: 'offsite_failed', name, reason, attempts });
  }
}
