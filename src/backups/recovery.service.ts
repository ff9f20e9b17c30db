import { type CarriedRows, readCarried, writeCarried } from './carried-state';
import { HttpStatus, Inject, Injectable, Logger } from '@nestjs/common';
import type { Readable } from 'node:stream';
import type { ReadStream } from 'node:fs';
import { Observable, Subject } from 'rxjs';
import { DataSource } from 'typeorm';
import { AuditActor, AuditService } from '../audit/audit.service';
import { hashSessionToken } from '../auth/credentials';
import { ApiError } from '../common/api-error';
import { Clock } from '../common/clock';
import { OperationLock } from '../common/operation-lock';
import { OpsEvents } from '../common/ops-events';
import type { RequestMeta } from '../common/request-meta';
import { AppConfig } from '../config/app-config';
import { SCHEMA_VERSION } from '../database/migrations';
import { SQLITE_HANDLE, SqliteHandle } from '../database/sqlite-handle';
import { BackupFiles, UploadInterruptedError, UploadTooLargeError } from './backup-files';
import type { BackupManifestEntity } from './backup-manifest.entity';
import { BackupManifests } from './backup-manifests';
import { type BackupKind, SAFETY_PREFIX, UPLOAD_PREFIX, parseBackupName, validateBackupName } from './backup-name';
import { safeReason } from './backups.service';
import type { RestoreResponseDto, UploadResponseDto, VerifyResultDto } from './dto/recovery.dto';
import { type InspectResult, runInspectWorker } from './snapshot';

/** The tables that make a file this application's database (`migrations` is TypeORM's). */
export const REQUIRED_TABLES = ['users', 'sessions', 'settings', 'audit_log', 'scheduler_tasks', 'migrations'];

/**
 * Tables about the backups folder and the scheduler's runs rather than about the application's data. They describe
 * files and runs that exist now, whatever the restored data says, so a restore keeps their live content: without
 * this, restoring an old backup would forget the checksums of every newer backup (and of the safety backup).
 */

export type Checksum = 'match' | 'mismatch' | 'unknown';

export interface RestoreRequest {
  actor: AuditActor;
  meta: RequestMeta;
  /** The caller's session cookie, when it authenticated by one: tells whether it survives in the restored data. */
  sessionToken?: string;
}

export interface DownloadHandle {
  name: string;
  size: number;
  sha256: string;
  stream: ReadStream;
}

export interface DrillOutcome {
  ok: boolean;
  message: string;
  name: string | null;
}

/** A step of a restore failed after the live database may have changed; `stage` goes to the audit trail. */
class RestoreStepError extends Error {
  constructor(
    readonly stage: string,
    message: string,
  ) {
    super(message);
    this.name = 'RestoreStepError';
  }
}

/**
 * Verify, download, upload and restore backups, and the restore drill.
 *
 * Restore mechanism (measured on this machine, 200 MB database, WAL mode, the live TypeORM connection open and
 * reading every 10 ms): the backup file is opened read-only in a worker thread and SQLite's backup API copies its
 * pages into the live database's file through a second connection (better-sqlite3 can only be the *source* of a
 * backup and writes to a path, so the live handle cannot be the destination object itself). That connection takes
 * the live database's write lock like any writer, copies all pages in one step and commits them as one WAL
 * transaction, bumping the schema cookie, so every connection — the live handle included — sees the restored
 * state at its next read and reloads the schema. Copy 0.57 s + checkpoint 0.49 s; the main event loop's worst
 * lag was 8 ms and main-thread reads during the copy took at most 4 ms (they see the old data until the commit).
 * Rejected: `db.serialize()` / `new Database(buffer)` (the whole file in memory), re-opening the connection
 * (every injected handle would go stale), row-by-row copying through ATTACH (not a page copy; blocks the loop).
 */
@Injectable()
export class RecoveryService {
  private readonly logger = new Logger(RecoveryService.name);
  private readonly restored = new Subject<{ name: string }>();
  /** Emits after each successful restore: settings (the schedule) may have changed. */
  readonly restored$: Observable<{ name: string }> = this.restored.asObservable();

  constructor(
    private readonly files: BackupFiles,
    private readonly manifests: BackupManifests,
    private readonly lock: OperationLock,
    private readonly audit: AuditService,
    private readonly events: OpsEvents,
    private readonly config: AppConfig,
    private readonly clock: Clock,
    private readonly dataSource: DataSource,
    @Inject(SQLITE_HANDLE) private readonly db: SqliteHandle,
  ) {}

  // ---------------------------------------------------------------- verify

  async verify(rawName: unknown, actor: AuditActor, meta: RequestMeta): Promise<VerifyResultDto> {
    const name = validName(rawName);
    await this.requireBackup(name);
    const manifest = await this.manifests.get(name);
    const check = await this.files.inspect(name, { integrity: 'full', hash: true });
    const checksum = compareChecksum(manifest, check.sha256);
    const integrity = check.integrity ?? 'unreadable';
    const ok = check.opened && integrity === 'ok' && checksum !== 'mismatch';
    const now = this.clock.nowSeconds();
    await this.manifests.patch(name, manifest?.kind ?? kindFromName(name), {
      integrity,
      verifiedAt: ok ? now : null,
      // Known checksums are never overwritten by what the file says now; an unknown one is learnt here.
      ...(manifest?.sha256 ? {} : { sha256: check.sha256, size: check.size }),
      ...(check.opened ? { pageCount: check.pageCount } : {}),
      schemaVersion: manifest?.schemaVersion ?? check.schemaVersion,
      sqliteVersion: manifest?.sqliteVersion ?? check.sqliteVersion,
    });
    await this.audit.record({
      action: 'backup_verify',
      actor,
      targetType: 'backup',
      targetId: name,
      detail: { name, ok, integrity, checksum },
      meta,
    });
    return { ok, name, integrity, checksum, sha256: check.sha256 };
  }

  // ---------------------------------------------------------------- download

  async download(rawName: unknown, actor: AuditActor, meta: RequestMeta): Promise<DownloadHandle> {
    const name = validName(rawName);
    const manifest = await this.manifests.get(name);
    let sha256 = manifest?.sha256 ?? null;
    if (!sha256) {
      await this.requireBackup(name);
      sha256 = await this.manifests.hashNow(name, manifest?.kind ?? kindFromName(name));
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

  // ---------------------------------------------------------------- upload

  /**
   * Streams the body to a temp file (capped at MAX_UPLOAD_BYTES), proves it a whole database of this application
   * (opens, integrity_check ok, the application's tables, a schema not newer than this build), converts a WAL-mode
   * file to a standalone one, and only then publishes it as `mc-upload-….db`. Nothing is kept on any failure.
   */
  async upload(
    body: Readable,
    contentLength: string | undefined,
    rawHint: unknown,
    actor: AuditActor,
    meta: RequestMeta,
  ): Promise<UploadResponseDto> {
    const hint = safeHint(rawHint);
    const cap = this.config.maxUploadBytes;
    const refuse = async (status: HttpStatus, error: string, reason: string, size?: number): Promise<never> => {
      await this.audit.record({
        action: 'backup_upload_failed',
        actor,
        targetType: 'backup',
        detail: { hint, reason, size: size ?? null },
        meta,
      });
      // A refused upload may still be streaming in: close the connection after answering instead of reading on.
      const headers: Record<string, string> = status === HttpStatus.PAYLOAD_TOO_LARGE ? { Connection: 'close' } : {};
      throw new ApiError(status, error, status === HttpStatus.PAYLOAD_TOO_LARGE ? { max_bytes: cap } : {}, headers);
    };

    if (contentLength !== undefined && /^\d+$/.test(contentLength) && Number(contentLength) > cap) {
      return refuse(HttpStatus.PAYLOAD_TOO_LARGE, 'Upload exceeds MAX_UPLOAD_BYTES', 'too_large');
    }
    let received: { tmp: string; size: number };
    try {
      received = await this.files.receiveUpload(body, cap);
    } catch (error) {
      if (error instanceof UploadTooLargeError) {
        return refuse(HttpStatus.PAYLOAD_TOO_LARGE, 'Upload exceeds MAX_UPLOAD_BYTES', 'too_large');
      }
      if (error instanceof UploadInterruptedError) {
        return refuse(HttpStatus.BAD_REQUEST, 'Upload interrupted', 'interrupted');
      }
      this.logger.error(`Upload failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      return refuse(HttpStatus.INTERNAL_SERVER_ERROR, 'Upload failed', safeReason(error));
    }
    const { tmp, size } = received;
    try {
      if (size === 0) {
        return await refuse(HttpStatus.BAD_REQUEST, 'Upload is empty', 'empty', 0);
      }
      const check = await this.files.inspectTemp(tmp, { integrity: 'full', hash: true, makeStandalone: true });
      const problem = applicationProblem(check);
      if (problem) {
        return await refuse(HttpStatus.BAD_REQUEST, problem, check.integrity ?? 'invalid', size);
      }
      const now = this.clock.now();
      const name = await this.files.publishTemp(tmp, UPLOAD_PREFIX, now);
      const nowSeconds = Math.floor(now.getTime() / 1000);
      await this.manifests.record(name, {
        kind: 'upload',
        sha256: check.sha256,
        size: check.size,
        pageCount: check.pageCount,
        sqliteVersion: check.sqliteVersion,
        schemaVersion: check.schemaVersion,
        quickCheck: 'ok',
        checkedAt: nowSeconds,
        integrity: 'ok',
        verifiedAt: nowSeconds,
      });
      await this.audit.record({
        action: 'backup_upload',
        actor,
        targetType: 'backup',
        targetId: name,
        detail: { name, size: check.size, sha256: check.sha256, hint, converted_from_wal: check.converted },
        meta,
      });
      this.events.emit({ type: 'backup_imported', name, size: check.size });
      const createdAtMs = parseBackupName(name)?.createdAtMs ?? now.getTime();
      return {
        success: true,
        backup: { name, size: check.size, created_at: Math.floor(createdAtMs / 1000), kind: 'upload' },
      };
    } catch (error) {
      if (error instanceof ApiError) {
        throw error;
      }
      this.logger.error(`Upload failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      return refuse(HttpStatus.INTERNAL_SERVER_ERROR, 'Upload failed', safeReason(error), size);
    } finally {
      // After publishTemp the temp name is already gone; this also clears any -wal/-shm the conversion made.
      await this.files.discardTemp(tmp).catch(() => undefined);
    }
  }

  // ---------------------------------------------------------------- restore

  /** See the class comment. In turn with every backup and restore; other mutating requests get 503 meanwhile. */
  async restore(rawName: unknown, request: RestoreRequest): Promise<RestoreResponseDto> {
    const name = validName(rawName);
    await this.requireBackup(name);
    return this.lock.runExclusive('restore', () => this.restoreLocked(name, request));
  }

  private async restoreLocked(name: string, request: RestoreRequest): Promise<RestoreResponseDto> {
    const started = performance.now();
    await this.requireBackup(name);
    const failed = async (detail: Record<string, unknown>): Promise<void> => {
      await this.audit.record({
        action: 'backup_restore_failed',
        actor: request.actor,
        targetType: 'backup',
        targetId: name,
        detail: { name, ...detail },
        meta: request.meta,
      });
      this.events.emit({
        type: 'restore_failed',
        name,
        reason: String(detail.reason),
        rolledBack: detail.rolled_back === true,
      });
    };

    // 1. Verify: nothing changes when the backup is not fit to become the live database.
    const manifest = await this.manifests.get(name);
    const check = await this.files.inspect(name, { integrity: 'full', hash: true });
    const checksum = compareChecksum(manifest, check.sha256);
    const livePageSize = Number(this.db.pragma('page_size', { simple: true }));
    const problem =
      checksum === 'mismatch'
        ? 'Backup checksum does not match its manifest'
        : (applicationProblem(check) ??
          (check.pageSize !== livePageSize ? 'Backup page size differs from the live database' : null));
    if (problem) {
      await this.manifests
        .patch(name, manifest?.kind ?? kindFromName(name), { integrity: check.integrity, verifiedAt: null })
        .catch(() => undefined);
      await failed({ stage: 'verify', reason: problem, integrity: check.integrity, checksum, rolled_back: false });
      throw new ApiError(HttpStatus.BAD_REQUEST, problem, { integrity: check.integrity, checksum });
    }

    // 2. Safety backup of the live database, through the same snapshot path as every backup.
    let safetyName: string;
    try {
      const safety = await this.files.snapshot(this.config.dbPath, SAFETY_PREFIX, this.clock.now());
      safetyName = safety.name;
      await this.manifests.recordSnapshot(safety, 'safety');
    } catch (error) {
      this.logger.error(`Restore of ${name}: safety backup failed: ${describe(error)}`);
      await failed({ stage: 'safety_backup', reason: safeReason(error), rolled_back: false });
      throw new ApiError(HttpStatus.INTERNAL_SERVER_ERROR, 'Restore failed: could not take a safety backup', {
        rolled_back: false,
      });
    }
    const carried = readCarried(this.db);

    // 3. The copy, migrations and the health check; any failure puts the safety backup back the same way.
    let pages = 0;
    try {
      pages = (await this.copyIn(name, 'copy')).pages;
      await this.afterCopy(carried, true);
    } catch (error) {
      const stage = error instanceof RestoreStepError ? error.stage : 'copy';
      this.logger.error(`Restore of ${name} failed at ${stage}: ${describe(error)}; rolling back to ${safetyName}`);
      let rolledBack = false;
      try {
        await this.copyIn(safetyName, 'rollback');
        await this.afterCopy(carried, false);
        rolledBack = true;
      } catch (rollbackError) {
        this.logger.error(`ROLLBACK FAILED: restore ${safetyName} by hand: ${describe(rollbackError)}`);
      }
      await failed({
        stage,
        reason: error instanceof RestoreStepError ? error.message : safeReason(error),
        rolled_back: rolledBack,
        safety_backup: safetyName,
      });
      throw new ApiError(
        HttpStatus.INTERNAL_SERVER_ERROR,
        rolledBack
          ? 'Restore failed; the live database was rolled back to the safety backup'
          : 'Restore failed and the rollback failed: restore the safety backup by hand',
        { rolled_back: rolledBack, safety_backup: safetyName },
      );
    }

    // 4. Done: everything below writes into the restored database.
    const durationMs = performance.now() - started;
    await this.manifests
      .patch(name, manifest?.kind ?? kindFromName(name), {
        integrity: 'ok',
        verifiedAt: this.clock.nowSeconds(),
        ...(manifest?.sha256 ? {} : { sha256: check.sha256, size: check.size }),
      })
      .catch((error: unknown) => this.logger.warn(`Could not update the manifest of ${name}: ${describe(error)}`));
    const reloginRequired = this.reloginRequired(request.sessionToken);
    await this.audit.record({
      action: 'backup_restore',
      actor: request.actor,
      targetType: 'backup',
      targetId: name,
      detail: { name, safety_backup: safetyName, pages, duration_ms: Math.round(durationMs) },
      meta: request.meta,
    });
    this.events.emit({ type: 'restore_succeeded', name, durationMs });
    this.logger.log(`Restored ${name} (${pages} pages) in ${Math.round(durationMs)} ms; safety backup ${safetyName}`);
    this.restored.next({ name });
    return { success: true, restored: name, safety_backup: safetyName, relogin_required: reloginRequired };
  }

  private async copyIn(name: string, stage: string): Promise<{ pages: number }> {
    try {
      return await this.files.restoreInto(name, this.config.dbPath);
    } catch (error) {
      throw new RestoreStepError(stage, safeReason(error));
    }
  }

  /** Migrations, the carried tables, then the health check (SELECT 1, quick_check, an admin). */
  private async afterCopy(carried: CarriedRows, requireAdmin: boolean): Promise<void> {
    try {
      await this.dataSource.runMigrations({ transaction: 'each' });
    } catch (error) {
      throw new RestoreStepError('migrations', safeReason(error));
    }
    try {
      writeCarried(this.db, carried);
    } catch (error) {
      throw new RestoreStepError('carry_over', safeReason(error));
    }
    try {
      this.db.prepare('SELECT 1').get();
    } catch {
      throw new RestoreStepError('health', 'The database does not answer');
    }
    const quick = await runInspectWorker(this.config.dbPath, { integrity: 'quick', hash: false });
    if (quick.integrity !== 'ok') {
      throw new RestoreStepError('health', 'quick_check failed on the restored database');
    }
    if (requireAdmin) {
      const row = this.db.prepare("SELECT count(*) AS n FROM users WHERE role = 'admin'").get() as { n: number };
      if (Number(row.n) < 1) {
        throw new RestoreStepError('health', 'The restored database has no admin user');
      }
    }
  }

  /** Whether the caller's own session cookie is missing (or expired) in the restored data. */
  private reloginRequired(sessionToken: string | undefined): boolean {
    if (sessionToken === undefined) {
      return false;
    }
    const row = this.db
      .prepare('SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ?')
      .get(hashSessionToken(sessionToken), this.clock.nowSeconds());
    return row === undefined;
  }

  // ---------------------------------------------------------------- drill

  /**
   * Restores the newest backup into a scratch file by the same page copy a restore uses, then integrity_check and
   * a sanity query on it (users readable, an admin), after checking its checksum against the manifest. The scratch
   * file is always removed. Never throws: the outcome says what happened, and a failure emits `drill_failed`.
   */
  async drill(): Promise<DrillOutcome> {
    const started = performance.now();
    let name: string | null = null;
    let outcome: DrillOutcome;
    try {
      const newest = (await this.files.list())[0];
      if (!newest) {
        outcome = { ok: false, name: null, message: 'Restore drill failed: there is no backup to restore' };
      } else {
        name = newest.name;
        outcome = await this.drillOne(newest.name);
      }
    } catch (error) {
      this.logger.error(`Restore drill failed: ${describe(error)}`);
      outcome = { ok: false, name, message: `Restore drill of ${name ?? 'the newest backup'} failed` };
    }
    if (outcome.ok && outcome.name) {
      this.events.emit({ type: 'drill_succeeded', name: outcome.name, durationMs: performance.now() - started });
    } else {
      this.logger.error(outcome.message);
      this.events.emit({ type: 'drill_failed', name: outcome.name, reason: outcome.message });
    }
    return outcome;
  }

  private async drillOne(name: string): Promise<DrillOutcome> {
    const fail = (why: string): DrillOutcome => ({
      ok: false,
      name,
      message: `Restore drill of ${name} failed: ${why}`,
    });
    const manifest = await this.manifests.get(name);
    const source = await this.files.inspect(name, { integrity: 'none', hash: true });
    if (compareChecksum(manifest, source.sha256) === 'mismatch') {
      return fail('checksum does not match its manifest');
    }
    let tmp: string;
    try {
      ({ tmp } = await this.files.restoreBackupToTemp(name));
    } catch (error) {
      this.logger.error(`Restore drill of ${name}: copy failed: ${describe(error)}`);
      return fail(`the copy into a scratch file failed (${safeReason(error)})`);
    }
    try {
      const scratch = await this.files.inspectTemp(tmp, { integrity: 'full', hash: false });
      if (!scratch.opened || scratch.integrity !== 'ok') {
        return fail(`integrity_check: ${scratch.integrity ?? 'unreadable'}`);
      }
      if (scratch.admins === null) {
        return fail('the users table is not readable');
      }
      if (scratch.admins < 1) {
        return fail('no admin user');
      }
      if (!manifest?.sha256 && source.sha256) {
        await this.manifests.patch(name, kindFromName(name), { sha256: source.sha256, size: source.size });
      }
      return { ok: true, name, message: `Restore drill of ${name} passed (${scratch.pageCount ?? 0} pages)` };
    } finally {
      await this.files.discardTemp(tmp).catch(() => undefined);
    }
  }

  // ---------------------------------------------------------------- helpers

  private async requireBackup(name: string): Promise<void> {
    if (!(await this.files.statBackup(name))) {
      throw new ApiError(HttpStatus.NOT_FOUND, 'Backup not found');
    }
  }
}

function validName(rawName: unknown): string {
  const result = validateBackupName(rawName);
  if (!result.ok) {
    throw new ApiError(HttpStatus.BAD_REQUEST, result.reason);
  }
  return result.name;
}

function kindFromName(name: string): BackupKind {
  return parseBackupName(name)?.kind ?? 'upload';
}

function compareChecksum(manifest: BackupManifestEntity | null, sha256: string | null): Checksum {
  if (!manifest?.sha256 || !sha256) {
    return 'unknown';
  }
  return manifest.sha256 === sha256 ? 'match' : 'mismatch';
}

/** Why a file cannot become this application's database, or null when it can. Messages never quote the file. */
export function applicationProblem(check: InspectResult): string | null {
  if (!check.opened) {
    return check.integrity === 'database file is truncated'
      ? 'Not a whole SQLite database: the file is truncated'
      : 'Not a SQLite database';
  }
  if (check.integrity !== 'ok') {
    return 'The database is corrupt (integrity_check failed)';
  }
  const missing = REQUIRED_TABLES.filter((table) => !check.tables.includes(table));
  if (missing.length > 0 || check.schemaVersion === null) {
    return 'Not a Mission Control database: application tables are missing';
  }
  if (check.schemaVersion > SCHEMA_VERSION) {
    return 'The database comes from a newer version of this application';
  }
  return null;
}

function safeHint(raw: unknown): string | null {
  return typeof raw === 'string' && /^[A-Za-z0-9._ -]{1,255}$/.test(raw) ? raw : null;
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}
