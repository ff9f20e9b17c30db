import { HttpStatus, Inject, Injectable, Logger } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { AuditActor, AuditService } from '../audit/audit.service';
import { BackupFiles, UploadInterruptedError, UploadTooLargeError } from '../backups/backup-files';
import { BackupManifests } from '../backups/backup-manifests';
import { parseBackupName, UPLOAD_PREFIX } from '../backups/backup-name';
import { safeReason } from '../backups/backups.service';
import { ApiError } from '../common/api-error';
import { Clock } from '../common/clock';
import { type ClassifiedFailure, classifyFailure, describeForLog } from '../common/failure-reason';
import { DomainError } from '../common/domain-error';
import { continueIfExpected, discardRestOfBody } from '../common/http-body';
import { OpsEvents } from '../common/ops-events';
import type { RequestMeta } from '../common/request-meta';
import { AppConfig } from '../config/app-config';
import { SQLITE_HANDLE, SqliteHandle } from '../database/sqlite-handle';
import { compareChecksum } from './admission';
import type { UploadResponseDto, VerifyResultDto } from './dto/recovery.dto';
import { ImportPipeline, ImportRefusedError } from './import-pipeline';
import { kindFromName } from './restore.service';

export const EMPTY_UPLOAD = 'The request body is empty: send the backup file as the body';

export interface DrillOutcome {
  ok: boolean;
  message: string;
  name: string | null;
}

/** Verify and upload backups, and the restore drill. Restores go through RestoreService. */
@Injectable()
export class RecoveryService {
  private readonly logger = new Logger(RecoveryService.name);

  constructor(
    private readonly files: BackupFiles,
    private readonly manifests: BackupManifests,
    private readonly audit: AuditService,
    private readonly events: OpsEvents,
    private readonly config: AppConfig,
    private readonly clock: Clock,
    private readonly imports: ImportPipeline,
    @Inject(SQLITE_HANDLE) private readonly db: SqliteHandle,
  ) {}

  // ---------------------------------------------------------------- verify

  async verify(name: string, actor: AuditActor, meta: Partial<RequestMeta>): Promise<VerifyResultDto> {
    await this.requireBackup(name);
    const manifest = await this.manifests.get(name);
    const check = await this.files.inspect(name, { integrity: 'full', hash: true }).catch((error: unknown) => {
      throw this.operationFailed('Verify failed', `Verify of ${name}`, error);
    });
    const checksum = compareChecksum(manifest?.sha256, check.sha256);
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
    meta: Partial<RequestMeta>,
  ): Promise<UploadResponseDto> {
    const hint = safeHint(rawHint);
    const cap = this.config.maxUploadBytes;
    const refuse = async (
      status: HttpStatus,
      error: string,
      reason: string,
      size?: number,
      failure?: ClassifiedFailure,
    ): Promise<never> => {
      await this.audit.record({
        action: 'backup_upload_failed',
        actor,
        targetType: 'backup',
        detail: { hint, reason, size: size ?? null },
        meta,
      });
      // A refused upload may still be streaming in: answer, keep discarding what still comes (bounded) so the answer
      // is read rather than lost to a reset, then close the connection.
      if (status === HttpStatus.PAYLOAD_TOO_LARGE && isHttpRequest(body)) {
        discardRestOfBody(body);
      }
      const headers: Record<string, string> = status === HttpStatus.PAYLOAD_TOO_LARGE ? { Connection: 'close' } : {};
      const extra: Record<string, unknown> =
        status === HttpStatus.PAYLOAD_TOO_LARGE ? { max_bytes: cap } : { ...failure };
      throw new ApiError(status, error, extra, headers);
    };

    if (contentLength !== undefined && /^\d+$/.test(contentLength) && Number(contentLength) > cap) {
      return refuse(HttpStatus.PAYLOAD_TOO_LARGE, 'Upload exceeds MAX_UPLOAD_BYTES', 'too_large');
    }
    let received: { tmp: string; size: number };
    if (isHttpRequest(body)) {
      // Authenticated, and the declared size fits: now the client may send the body (Expect: 100-continue).
      continueIfExpected(body);
    }
    try {
      received = await this.files.receiveUpload(body, cap);
    } catch (error) {
      if (error instanceof UploadTooLargeError) {
        return refuse(HttpStatus.PAYLOAD_TOO_LARGE, 'Upload exceeds MAX_UPLOAD_BYTES', 'too_large');
      }
      if (error instanceof UploadInterruptedError) {
        return refuse(HttpStatus.BAD_REQUEST, 'Upload interrupted', 'interrupted');
      }
      const failure = classifyFailure(error);
      this.logger.error(`Upload failed (${failure.reason}): ${describeForLog(error)}`);
      return refuse(HttpStatus.INTERNAL_SERVER_ERROR, 'Upload failed', safeReason(error), undefined, failure);
    }
    const { tmp, size } = received;
    try {
      if (size === 0) {
        return await refuse(HttpStatus.BAD_REQUEST, EMPTY_UPLOAD, 'empty', 0);
      }
      let admitted;
      try {
        // A page size other than the live database's can never be restored into it (SQLite cannot change the page
        // size of a WAL database): refused now rather than at restore time.
        const livePageSize = Number(this.db.pragma('page_size', { simple: true }));
        admitted = await this.imports.admit({ tmp, size, sha256: '' }, { livePageSize });
      } catch (error) {
        if (error instanceof ImportRefusedError) {
          const reason = error.check.integrity === 'ok' ? 'incompatible' : (error.check.integrity ?? 'invalid');
          return await refuse(HttpStatus.BAD_REQUEST, error.verdict.problems[0], reason, size);
        }
        throw error;
      }
      const check = admitted.check;
      const foreignTables = check.schemaCheck?.foreignTables ?? [];
      const now = this.clock.now();
      const name = await this.imports.publishNew(admitted, UPLOAD_PREFIX, now);
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
        detail: {
          name,
          size: check.size,
          sha256: check.sha256,
          hint,
          converted_from_wal: check.converted,
          foreign_tables: foreignTables,
        },
        meta,
      });
      this.events.emit({ type: 'backup_imported', name, size: check.size });
      const createdAtMs = parseBackupName(name)?.createdAtMs ?? now.getTime();
      return {
        success: true,
        backup: { name, size: check.size, created_at: Math.floor(createdAtMs / 1000), kind: 'upload' },
        foreign_tables: foreignTables,
      };
    } catch (error) {
      if (error instanceof ApiError) {
        throw error;
      }
      const failure = classifyFailure(error);
      this.logger.error(`Upload failed (${failure.reason}): ${describeForLog(error)}`);
      return refuse(HttpStatus.INTERNAL_SERVER_ERROR, 'Upload failed', safeReason(error), size, failure);
    } finally {
      // After publishTemp the temp name is already gone; this also clears any -wal/-shm the conversion made.
      await this.files.discardTemp(tmp).catch(() => undefined);
    }
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
    if (compareChecksum(manifest?.sha256, source.sha256) === 'mismatch') {
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

  /** Logs the cause (with the request id, via pino) and returns the 500 a client sees: `reason` + a safe message. */
  private operationFailed(error: string, what: string, cause: unknown): ApiError | DomainError {
    if (cause instanceof ApiError || cause instanceof DomainError) {
      // Already an answer (a backup deleted under the operation is a 404, not a failure).
      return cause;
    }
    const failure = classifyFailure(cause);
    this.logger.error(`${what} failed (${failure.reason}): ${describeForLog(cause)}`);
    return new ApiError(HttpStatus.INTERNAL_SERVER_ERROR, error, { ...failure });
  }

  private async requireBackup(name: string): Promise<void> {
    if (!(await this.files.statBackup(name))) {
      throw new ApiError(HttpStatus.NOT_FOUND, 'Backup not found');
    }
  }
}

function isHttpRequest(body: Readable): body is IncomingMessage {
  return 'socket' in body && 'headers' in body;
}

function safeHint(raw: unknown): string | null {
  return typeof raw === 'string' && /^[A-Za-z0-9._ -]{1,255}$/.test(raw) ? raw : null;
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}
