import { BeforeApplicationShutdown, HttpStatus, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { AuditActor, AuditService, SYSTEM_ACTORS } from '../audit/audit.service';
import { ApiError } from '../common/api-error';
import { Clock } from '../common/clock';
import { classifyFailure, describeForLog } from '../common/failure-reason';
import type { RequestMeta } from '../common/request-meta';
import { AppConfig } from '../config/app-config';
import { SettingsService } from '../settings/settings.service';
import { BackupFiles, type BackupFileInfo } from './backup-files';
import { BackupManifests } from './backup-manifests';
import { requireBackupName } from './backup-name.pipe';
import { BACKUP_PREFIX, type BackupKind, parseBackupName } from './backup-name';
import type { ReadStream } from 'node:fs';
import type { BackupDto, BackupListDto, CreatedBackupDto } from './dto/backup.dto';
import { OperationLock } from '../common/operation-lock';
import { OpsEvents } from '../common/ops-events';
import { RemoteCopies } from '../common/remote-copies';
import { planRetention } from './retention';

export interface CreateBackupRequest {
  actor: AuditActor;
  kind: 'manual' | 'scheduled';
  meta?: Partial<RequestMeta>;
  /** Recorded in the audit detail, e.g. `scheduler_trigger` when an admin runs the scheduled task by hand. */
  trigger?: string;
}

export const BACKUP_FAILED = 'Backup failed';

export interface DownloadHandle {
  name: string;
  size: number;
  sha256: string;
  stream: ReadStream;
}

const FUTURE_NAMED_ACTION = 'backup_future_named';

@Injectable()
export class BackupsService implements OnModuleInit, BeforeApplicationShutdown {
  private readonly logger = new Logger(BackupsService.name);

  constructor(
    private readonly files: BackupFiles,
    private readonly lock: OperationLock,
    private readonly settings: SettingsService,
    private readonly audit: AuditService,
    private readonly config: AppConfig,
    private readonly clock: Clock,
    private readonly events: OpsEvents,
    private readonly manifests: BackupManifests,
    private readonly remoteCopies: RemoteCopies,
  ) {}

  /** The folder exists with mode 0700, and temp files of a backup killed mid-copy are gone. */
  async onModuleInit(): Promise<void> {
    await this.files.ensureDir();
    try {
      const swept = await this.manifests.sweep(new Set((await this.files.list()).map((f) => f.name)));
      if (swept > 0) {
        this.logger.log(`Forgot ${swept} manifest(s) of backups no longer on disk`);
      }
    } catch (error) {
      // A damaged live schema (no backup_manifests) must not stop start-up: health reports it.
      this.logger.error(`Could not sweep the backup manifests at start-up: ${safeReason(error)}`);
    }
  }

  /**
   * Removes the temp files of a backup killed mid-copy. Only the service calls this, once at start-up, before its
   * own first backup: a CLI run beside a live service must not take a temp file from under the service's backup.
   */
  async removeLeftovers(): Promise<void> {
    const removed = await this.files.removeLeftovers();
    if (removed.length > 0) {
      this.logger.warn(`Removed ${removed.length} leftover temporary file(s) of an interrupted backup`);
    }
  }

  /** Lets a running backup finish (bounded by SHUTDOWN_TIMEOUT_MS) before the database is closed under it. */
  async beforeApplicationShutdown(): Promise<void> {
    if (this.lock.running === null) {
      return;
    }
    this.logger.log(`Waiting up to ${this.config.shutdownTimeoutMs} ms for the running ${this.lock.running} to finish`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.config.shutdownTimeoutMs);
    });
    await Promise.race([this.lock.waitForIdle(), timeout]);
    clearTimeout(timer);
  }

  /**
   * Files on disk joined with their manifests. A file without a known sha256 (copied in by hand) is listed with
   * `sha256: null` and hashed in the background; the list never waits for it.
   */
  async list(): Promise<BackupListDto> {
    const [files, manifests] = await Promise.all([this.files.list(), this.manifests.listed()]);
    return {
      backups: files.map((file) => {
        const manifest = manifests.get(file.name);
        const kind = manifest?.kind ?? kindOf(file);
        if (!manifest?.sha256) {
          this.manifests.hashLater(file.name, kind);
        }
        return {
          name: file.name,
          size: file.size,
          created_at: Math.floor(file.createdAtMs / 1000),
          kind,
          sha256: manifest?.sha256 ?? null,
          verified_at: manifest?.verifiedAt ?? null,
          offsite: this.remoteCopies.copyOf(file.name, kind),
        };
      }),
      dir: this.files.dir,
    };
  }

  /**
   * A hot, verified snapshot of the live database (see BackupFiles.snapshot), taken in turn with every other
   * backup or restore, then retention. Failure: logged in full here, audited, and a 500 for the client with only
   * a classified `reason` and a safe `message` (see classifyFailure).
   */
  create(request: CreateBackupRequest): Promise<CreatedBackupDto> {
    return this.lock.runExclusive('backup', async () => {
      let snapshot;
      try {
        snapshot = await this.files.snapshot(this.config.dbPath, BACKUP_PREFIX, this.clock.now());
      } catch (error) {
        const failure = classifyFailure(error);
        // The detail goes to the log (tagged with the request id by pino), never to the client.
        this.logger.error(`Backup failed (${failure.reason}): ${describeForLog(error)}`);
        await this.audit.record({
          action: 'backup_failed',
          actor: request.actor,
          targetType: 'backup',
          detail: {
            kind: request.kind,
            trigger: request.trigger ?? null,
            reason: safeReason(error),
            failure_reason: failure.reason,
          },
          meta: request.meta,
        });
        this.events.emit({
          type: 'backup_failed',
          kind: request.kind,
          reason: safeReason(error),
          task: request.trigger,
        });
        throw new ApiError(HttpStatus.INTERNAL_SERVER_ERROR, BACKUP_FAILED, {
          reason: failure.reason,
          message: failure.message,
        });
      }
      await this.manifests.recordSnapshot(snapshot, request.kind);
      const durationMs = Math.round(snapshot.durationMs);
      const mbPerSecond = snapshot.size / 1024 / 1024 / Math.max(snapshot.durationMs / 1000, 0.001);
      this.logger.log(
        `Backup ${snapshot.name}: ${snapshot.size} bytes in ${durationMs} ms (${mbPerSecond.toFixed(1)} MB/s)`,
      );
      await this.audit.record({
        action: 'backup_create',
        actor: request.actor,
        targetType: 'backup',
        targetId: snapshot.name,
        detail: {
          name: snapshot.name,
          size: snapshot.size,
          kind: request.kind,
          trigger: request.trigger ?? null,
          duration_ms: durationMs,
        },
        meta: request.meta,
      });
      this.events.emit({
        type: 'backup_succeeded',
        name: snapshot.name,
        size: snapshot.size,
        durationMs: snapshot.durationMs,
        kind: request.kind,
      });
      await this.prune(request.actor, snapshot.name);
      return {
        name: snapshot.name,
        size: snapshot.size,
        created_at: Math.floor(snapshot.createdAtMs / 1000),
        kind: request.kind,
        duration_ms: durationMs,
      };
    });
  }

  async remove(rawName: unknown, actor: AuditActor, meta: RequestMeta): Promise<void> {
    const name = this.validName(rawName);
    const outcome = await this.files.remove(name);
    if (outcome !== 'removed') {
      // A symlink or a folder under a backup's name is not a backup: it is left alone and reported absent.
      throw new ApiError(HttpStatus.NOT_FOUND, 'Backup not found');
    }
    await this.manifests.remove([name]);
    await this.audit.record({
      action: 'backup_delete',
      actor,
      targetType: 'backup',
      targetId: name,
      // Deleting a backup never deletes its off-site copy; one not uploaded yet is lost for good, so say so.
      detail: { name, offsite_pending: this.remoteCopies.awaitingUpload().has(name) },
      meta,
    });
  }

  /**
   * Applies the retention settings as they are now, never to `keep` (the backup the calling request just made).
   * One audit row per pruned file. A failure is logged and audited but never thrown: the backup that triggered it
   * has already succeeded.
   */
  async prune(actor: AuditActor = SYSTEM_ACTORS.system, keep?: string): Promise<string[]> {
    const pruned: string[] = [];
    try {
      const count = await this.settings.getInt('general.backup_retention_count');
      const maxAgeDays = await this.settings.getInt('general.backup_retention_days');
      // A backup whose off-site copy is not uploaded yet is kept until it is (the count is exceeded meanwhile).
      const held = this.remoteCopies.awaitingUpload();
      const [files, manifests] = await Promise.all([this.files.list(), this.manifests.listed()]);
      const nowMs = this.clock.nowMs();
      const plan = planRetention(
        files.map((file) => ({ ...file, recordedKind: manifests.get(file.name)?.kind ?? null })),
        { count, maxAgeDays, nowMs, keep },
      );
      await this.reportFutureNamed(plan.futureNamed, nowMs, actor);
      for (const file of plan.doomed.filter((f) => !held.has(f.name))) {
        const outcome = await this.files.remove(file.name);
        if (outcome === 'removed') {
          pruned.push(file.name);
          await this.manifests.remove([file.name]);
          this.events.emit({ type: 'backup_pruned', name: file.name });
          this.logger.log(`Pruned ${file.name} (retention count ${count}, max age ${maxAgeDays} days)`);
          await this.audit.record({
            action: 'backup_prune',
            actor,
            targetType: 'backup',
            targetId: file.name,
            detail: { name: file.name, size: file.size, retention_count: count, retention_days: maxAgeDays },
          });
        }
      }
    } catch (error) {
      this.logger.error(`Pruning failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      await this.audit.record({
        action: 'backup_prune_failed',
        actor,
        targetType: 'backup',
        detail: { reason: safeReason(error), pruned },
      });
    }
    return pruned;
  }

  /** A backup's stream with its sha256 (from the manifest, or computed now and recorded), audited. */
  async download(name: string, actor: AuditActor, meta: RequestMeta): Promise<DownloadHandle> {
    const manifest = await this.manifests.get(name);
    let sha256 = manifest?.sha256 ?? null;
    if (!sha256) {
      if (!(await this.files.statBackup(name))) {
        throw new ApiError(HttpStatus.NOT_FOUND, 'Backup not found');
      }
      sha256 = await this.manifests.hashNow(name, manifest?.kind ?? kindOf(parseBackupName(name) ?? {}));
    }
    const opened = await this.files.openForDownload(name);
    if (!opened) {
      throw new ApiError(HttpStatus.NOT_FOUND, 'Backup not found');
    }
    await this.audit.record({
      action: 'backup_download',
      actor,
      targetType: 'backup',
      targetId: name,
      detail: { name, size: opened.size, sha256 },
      meta,
    });
    return { name, size: opened.size, sha256, stream: opened.stream };
  }

  /**
   * Backups named later than now were made while the clock was ahead: retention leaves them alone, so the operator
   * must decide. Warned on every pass, audited once per file (the audit trail is the record that survives restarts).
   */
  private async reportFutureNamed(files: readonly BackupFileInfo[], nowMs: number, actor: AuditActor): Promise<void> {
    for (const file of files) {
      const aheadSeconds = Math.round((file.createdAtMs - nowMs) / 1000);
      this.logger.warn(
        `${file.name} is named ${aheadSeconds} s later than now (was the clock ahead?): retention neither removes ` +
          'nor counts it; delete it by hand once checked',
      );
      if (await this.audit.hasEvent(FUTURE_NAMED_ACTION, file.name)) {
        continue;
      }
      await this.audit.record({
        action: FUTURE_NAMED_ACTION,
        actor,
        targetType: 'backup',
        targetId: file.name,
        detail: {
          name: file.name,
          named_at: Math.floor(file.createdAtMs / 1000),
          now: Math.floor(nowMs / 1000),
          ahead_seconds: aheadSeconds,
        },
      });
    }
  }

  private validName(rawName: unknown): string {
    return requireBackupName(rawName);
  }
}

/** The kind a file's name implies. A foreign `.db` name came from outside, like an upload (and is never pruned). */
export function kindOf(file: { kind?: BackupKind | null }): BackupKind {
  return file.kind ?? 'upload';
}

/** For the audit trail: an error code or class, never a message that might carry a path. */
export function safeReason(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[A-Z0-9_]{2,40}$/.test(code)) {
    return code;
  }
  return error instanceof Error ? error.name : 'unknown';
}

export type { BackupDto };
