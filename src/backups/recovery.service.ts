import { quote } from './schema-check';
import { HttpStatus, Inject, Injectable, Logger } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { continueIfExpected, discardRestOfBody } from '../common/http-body';
import type { ReadStream } from 'node:fs';
import { Observable, Subject } from 'rxjs';
import { AuditActor, AuditService } from '../audit/audit.service';
import { hashSessionToken } from '../auth/credentials';
import { ApiError } from '../common/api-error';
import { Clock } from '../common/clock';
import { type ClassifiedFailure, classifyFailure, describeForLog } from '../common/failure-reason';
import { OperationLock } from '../common/operation-lock';
import { OpsEvents } from '../common/ops-events';
import type { RequestMeta } from '../common/request-meta';
import { AppConfig } from '../config/app-config';
import { SCHEMA_VERSION } from '../database/migrations';
import { SQLITE_HANDLE, SqliteHandle } from '../database/sqlite-handle';
import { BackupFiles, UploadInterruptedError, UploadTooLargeError } from './backup-files';
import type { BackupManifestEntity } from './backup-manifest.entity';
import { BackupManifests } from './backup-manifests';
import { type BackupKind, UPLOAD_PREFIX, parseBackupName, validateBackupName } from './backup-name';
import { safeReason } from './backups.service';
import type { RestoreResponseDto, UploadResponseDto, VerifyResultDto } from './dto/recovery.dto';
import type { RestoreJournalEntry } from './restore-journal';
import { RestoreRunner, RestoreStepError } from './restore-runner';
import { sessionExists } from './restore-state';
import type { InspectResult } from './snapshot';

/** The tables that make a file this application's database (`migrations` is TypeORM's). */
export const REQUIRED_TABLES = ['users', 'sessions', 'settings', 'audit_log', 'scheduler_tasks', 'migrations'];

/**
 * Tables about the backups folder and the scheduler's runs rather than about the application's data. They describe
 * files and runs that exist now, whatever the restored data says, so a restore keeps their live content: without
 * this, restoring an old backup would forget the checksums of every newer backup (and of the safety backup).
 */

export type Checksum = 'match' | 'mismatch' | 'unknown';

export const EMPTY_UPLOAD = 'The request body is empty: send the backup file as the body';

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
    private readonly runner: RestoreRunner,
    @Inject(SQLITE_HANDLE) private readonly db: SqliteHandle,
  ) {}

  // ---------------------------------------------------------------- verify

  async verify(rawName: unknown, actor: AuditActor, meta: RequestMeta): Promise<VerifyResultDto> {
    const name = validName(rawName);
    await this.requireBackup(name);
    const manifest = await this.manifests.get(name);
    const check = await this.files.inspect(name, { integrity: 'full', hash: true }).catch((error: unknown) => {
      throw this.operationFailed('Verify failed', `Verify of ${name}`, error);
    });
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
      const check = await this.files.inspectTemp(tmp, { integrity: 'full', hash: true, makeStandalone: true });
      // A page size other than the live database's can never be restored into it (SQLite cannot change the page
      // size of a WAL database): refuse it now rather than at restore time.
      const livePageSize = Number(this.db.pragma('page_size', { simple: true }));
      const problem =
        applicationProblem(check) ??
        (check.pageSize !== livePageSize
          ? `The database's page size (${check.pageSize} bytes) differs from the live database's (${livePageSize} bytes), so it could never be restored`
          : null) ??
        (check.admins === null || check.admins < 1
          ? 'The database has no admin user, so it could never be restored (nobody could manage the service)'
          : null);
      if (problem) {
        const reason = check.integrity === 'ok' ? 'incompatible' : (check.integrity ?? 'invalid');
        return await refuse(HttpStatus.BAD_REQUEST, problem, reason, size);
      }
      const foreignTables = check.schemaCheck?.foreignTables ?? [];
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
    };
    const emitFailed = (reason: string, rolledBack: boolean): void =>
      this.events.emit({ type: 'restore_failed', name, reason, rolledBack });

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
      emitFailed(problem, false);
      throw new ApiError(HttpStatus.BAD_REQUEST, problem, { integrity: check.integrity, checksum });
    }

    // 2. Safety copy and page copy under the live write lock, then the bookkeeping and the health check; any failure
    //    after the copy puts the safety copy back (RestoreRunner).
    let done;
    try {
      done = await this.runner.run({
        name,
        schemaVersion: check.schemaVersion,
        actor: request.actor,
        meta: request.meta,
        caller: this.callerSession(request.sessionToken),
        detail: { integrity: 'ok', checksum },
      });
    } catch (error) {
      const step =
        error instanceof RestoreStepError ? error : new RestoreStepError('copy', safeReason(error), false, null);
      this.logger.error(`Restore of ${name} failed at ${step.stage}: ${describe(error)}`);
      if (!step.audited) {
        await failed({
          stage: step.stage,
          reason: step.message,
          rolled_back: step.rolledBack,
          ...(step.safety ? { safety_backup: step.safety } : {}),
        });
      }
      emitFailed(step.message, step.rolledBack);
      // The stable `reason` of every failing operation (issue 12). The step's message is a SQLite code or one of
      // ours, never a path, so it is the message shown.
      const failure = {
        reason: classifyFailure(Object.assign(new Error(step.message), { code: step.message })).reason,
        message: step.message,
      };
      if (step.safety === null) {
        throw new ApiError(HttpStatus.INTERNAL_SERVER_ERROR, `Restore failed: ${step.message}`, {
          rolled_back: false,
          ...failure,
        });
      }
      throw new ApiError(
        HttpStatus.INTERNAL_SERVER_ERROR,
        step.rolledBack
          ? 'Restore failed; the live database was rolled back to the safety backup'
          : 'Restore failed and the rollback failed: restore the safety backup by hand',
        { rolled_back: step.rolledBack, safety_backup: step.safety, ...failure },
      );
    }

    // 3. Done: everything below writes into the restored database.
    const durationMs = performance.now() - started;
    await this.manifests
      .patch(name, manifest?.kind ?? kindFromName(name), {
        integrity: 'ok',
        verifiedAt: this.clock.nowSeconds(),
        ...(manifest?.sha256 ? {} : { sha256: check.sha256, size: check.size }),
      })
      .catch((error: unknown) => this.logger.warn(`Could not update the manifest of ${name}: ${describe(error)}`));
    const reloginRequired =
      request.sessionToken !== undefined && !sessionExists(this.db, hashSessionToken(request.sessionToken));
    this.events.emit({ type: 'restore_succeeded', name, durationMs });
    this.logger.log(
      `Restored ${name} (${done.pages} pages) in ${Math.round(durationMs)} ms; safety backup ${done.safety.name}`,
    );
    this.restored.next({ name });
    return {
      success: true,
      restored: name,
      safety_backup: done.safety.name,
      relogin_required: reloginRequired,
      ...done.changes,
      foreign_tables: check.schemaCheck?.foreignTables ?? [],
    };
  }

  /** The caller's live session, to carry across the restore (RestoreRunner re-issues it to a restored admin). */
  private callerSession(sessionToken: string | undefined): RestoreJournalEntry['caller'] {
    if (sessionToken === undefined) {
      return null;
    }
    const tokenHash = hashSessionToken(sessionToken);
    const row = this.db
      .prepare(
        'SELECT u.username AS username, s.expires_at AS expiresAt FROM sessions s JOIN users u ON u.id = s.user_id ' +
          'WHERE s.token_hash = ?',
      )
      .get(tokenHash) as { username: string; expiresAt: number } | undefined;
    return row ? { username: row.username, tokenHash, expiresAt: Number(row.expiresAt) } : null;
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

  /** Logs the cause (with the request id, via pino) and returns the 500 a client sees: `reason` + a safe message. */
  private operationFailed(error: string, what: string, cause: unknown): ApiError {
    if (cause instanceof ApiError) {
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

/**
 * Why a file cannot become this application's database, or null when it can. Used by upload and restore (online and
 * CLI). Messages never quote the file's content, only the names of offending schema objects, sanitized.
 */
export function applicationProblem(check: InspectResult): string | null {
  if (!check.opened) {
    return check.integrity === 'database file is truncated'
      ? 'Not a whole SQLite database: the file is truncated'
      : 'Not a SQLite database';
  }
  if (check.virtualTables?.length) {
    // Never integrity-checked (that would run the module): refused by name, before the corruption verdict.
    const shown = check.virtualTables
      .slice(0, MAX_PROBLEMS_SHOWN)
      .map((t) => `virtual table ${quote(t)} is not accepted`);
    return `The database schema is not this application's: ${shown.join('; ')}`;
  }
  if (check.integrity !== 'ok') {
    return 'The database is corrupt (integrity_check failed)';
  }
  if (check.encoding !== null && check.encoding.toUpperCase() !== 'UTF-8') {
    return `The database uses ${check.encoding.replace(/[^A-Za-z0-9-]/g, '')} text encoding; this application only restores UTF-8 databases`;
  }
  const missing = REQUIRED_TABLES.filter((table) => !check.tables.includes(table));
  if (missing.length > 0 || check.schemaVersion === null) {
    return 'Not a Mission Control database: application tables are missing';
  }
  if (check.schemaVersion > SCHEMA_VERSION) {
    return 'The database comes from a newer version of this application';
  }
  // Every InspectResult of a file with a migration version carries its schema verdict (runInspectWorker); one
  // without it was never compared, and an unchecked schema never becomes the live database.
  if (check.schemaCheck === null) {
    return 'The database schema could not be checked';
  }
  if (check.schemaCheck.problems.length > 0) {
    const shown = check.schemaCheck.problems.slice(0, MAX_PROBLEMS_SHOWN);
    const more = check.schemaCheck.problems.length - shown.length;
    return `The database schema is not this application's: ${shown.join('; ')}${more > 0 ? `; and ${more} more` : ''}`;
  }
  return null;
}

const MAX_PROBLEMS_SHOWN = 10;

function isHttpRequest(body: Readable): body is IncomingMessage {
  return 'socket' in body && 'headers' in body;
}

function safeHint(raw: unknown): string | null {
  return typeof raw === 'string' && /^[A-Za-z0-9._ -]{1,255}$/.test(raw) ? raw : null;
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}
