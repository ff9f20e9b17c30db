import { HttpStatus, Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { Observable, Subject } from 'rxjs';
import { AuditActor, AuditService } from '../audit/audit.service';
import { hashSessionToken } from '../auth/credentials';
import { BackupFiles, type ScratchCopy } from '../backups/backup-files';
import { BackupManifests } from '../backups/backup-manifests';
import { type BackupKind, parseBackupName } from '../backups/backup-name';
import { ApiError } from '../common/api-error';
import { Clock } from '../common/clock';
import { classifyFailure } from '../common/failure-reason';
import { OperationLock } from '../common/operation-lock';
import { OpsEvents } from '../common/ops-events';
import type { RequestMeta } from '../common/request-meta';
import { FaultPoints } from '../config/fault-points';
import { SQLITE_HANDLE, SqliteHandle } from '../database/sqlite-handle';
import { ReplicationService } from '../replication/replication.service';
import type { InspectResult } from '../sqlite/snapshot';
import { admit, compareChecksum } from './admission';
import type { RestoreResponseDto } from './dto/recovery.dto';
import type { RestoreJournalEntry } from './restore-journal';
import { reasonOf, RESTORE_FAILED_EVENT, RestoreRunner, RestoreStepError } from './restore-runner';
import { insertAudit, sessionExists } from './restore-state';

export interface RestoreRequest {
  actor: AuditActor;
  meta: Partial<RequestMeta>;
  /** The caller's session cookie, when it authenticated by one: tells whether it survives in the restored data. */
  sessionToken?: string;
  /** The CLI with the service stopped: recorded in the audit detail. */
  mode?: RestoreJournalEntry['mode'];
  /** More for the restore's audit event (a point in time says which). */
  detail?: Record<string, unknown>;
  /**
   * A full inspection the caller already made of this very file (the CLI verifies before it boots the app; a point
   * in time was inspected at admission). Trusted only while the file's size and mtime are those it saw; otherwise
   * the restore inspects again.
   */
  verified?: PriorInspection;
  /**
   * A scratch copy of this very file the caller already began (a point in time is copied beside its admission).
   * Held to the verified sha256 like any; the restore discards it. Without it, the restore copies the backup itself.
   */
  scratch?: Promise<ScratchCopy>;
}

export interface PriorInspection {
  check: InspectResult;
  size: number;
  mtimeMs: number;
}

/**
 * The online restore, the one way a backup becomes the live database (the API and the CLI both call it): the name
 * is checked, the journal written, the backup verified by the admission rule, and RestoreRunner copies it in. In
 * turn with every backup and restore; other mutating requests get 503 meanwhile.
 */
@Injectable()
export class RestoreService {
  private readonly logger = new Logger(RestoreService.name);
  private readonly restored = new Subject<{ name: string }>();
  /** Emits after each successful restore: settings (the schedule) may have changed. */
  readonly restored$: Observable<{ name: string }> = this.restored.asObservable();

  constructor(
    private readonly files: BackupFiles,
    private readonly manifests: BackupManifests,
    private readonly lock: OperationLock,
    private readonly audit: AuditService,
    private readonly events: OpsEvents,
    private readonly clock: Clock,
    private readonly runner: RestoreRunner,
    private readonly faults: FaultPoints,
    @Inject(SQLITE_HANDLE) private readonly db: SqliteHandle,
    @Optional() private readonly replication?: ReplicationService,
  ) {}

  async restore(name: string, request: RestoreRequest): Promise<RestoreResponseDto> {
    await this.requireBackup(name);
    return this.lock.runExclusive('restore', () => this.restoreLocked(name, request));
  }

  /** A 1 GiB backup's integrity_check and sha256 take seconds: never twice for one restore. */
  private async inspectOnce(name: string, prior: PriorInspection | undefined): Promise<InspectResult> {
    if (prior !== undefined) {
      const now = await this.files.statBackup(name);
      if (now !== null && now.size === prior.size && now.mtimeMs === prior.mtimeMs) {
        return prior.check;
      }
    }
    return this.files.inspect(name, { integrity: 'full', hash: true });
  }

  private async restoreLocked(name: string, request: RestoreRequest): Promise<RestoreResponseDto> {
    const started = performance.now();
    await this.requireBackup(name);
    // A journal left by an earlier restore is settled first: this one overwrites it.
    this.runner.recover();
    const entry = this.runner.begin(name, request.actor, request.mode ?? 'online', this.callerSession(request));
    await this.faults.reach('verify');
    const failed = (detail: Record<string, unknown>): void => {
      insertAudit(this.db, this.runner.auditRow(entry, RESTORE_FAILED_EVENT, { name, ...detail }, request.meta));
      this.runner.journal.clear();
    };

    // 1. Verify: nothing changes when the backup is not fit to become the live database.
    // A live database whose manifest table is damaged is a reason to restore, not a reason to refuse.
    const manifest = await this.manifests.get(name).catch(() => null);
    // The scratch copy runs beside the verify; the runner holds its sha256 to the verified one, so a backup changed
    // in between is still refused.
    const scratch = request.scratch ?? this.files.copyBackupToScratch(name);
    // Awaited by the runner, or discarded on a refusal: a copy that fails before then is not an unhandled rejection.
    scratch.catch(() => undefined);
    // So is the safety copy: the runner takes it again under the write lock if anyone commits meanwhile.
    const safety = this.runner.beginSafetyCopy();
    const discardCopies = async (): Promise<void> => {
      await Promise.all([
        scratch.then((copy) => this.files.discardTemp(copy.tmp)).catch(() => undefined),
        this.runner.discardSafetyCopy(safety),
      ]);
    };
    let verdict;
    let check;
    try {
      check = await this.inspectOnce(name, request.verified);
      const checksum = compareChecksum(manifest?.sha256, check.sha256);
      const livePageSize = Number(this.db.pragma('page_size', { simple: true }));
      verdict = { checksum, ...admit({ check, checksum, livePageSize, requireAdmin: false }) };
    } catch (error) {
      await discardCopies();
      failed({ stage: 'verify', reason: reasonOf(error), rolled_back: false });
      throw error;
    }
    if (verdict.problems.length > 0) {
      await discardCopies();
      const problem =
        verdict.checksum === 'mismatch' ? 'Backup checksum does not match its manifest' : verdict.problems[0];
      await this.manifests
        .patch(name, manifest?.kind ?? kindFromName(name), { integrity: check.integrity, verifiedAt: null })
        .catch(() => undefined);
      failed({
        stage: 'verify',
        reason: problem,
        integrity: check.integrity,
        checksum: verdict.checksum,
        rolled_back: false,
      });
      this.events.emit({ type: 'restore_failed', name, reason: problem, rolledBack: false });
      throw new ApiError(HttpStatus.BAD_REQUEST, problem, { integrity: check.integrity, checksum: verdict.checksum });
    }

    // 2. Safety copy, bookkeeping and page copy under the live write lock (RestoreRunner).
    let done;
    try {
      done = await this.runner.run(entry, {
        name,
        schemaVersion: check.schemaVersion,
        verifiedSha256: check.sha256,
        scratch,
        safety,
        actor: request.actor,
        meta: request.meta,
        caller: entry.caller,
        detail: { ...request.detail, integrity: 'ok', checksum: verdict.checksum },
      });
    } catch (error) {
      const step =
        error instanceof RestoreStepError ? error : new RestoreStepError('copy', reasonOf(error), false, null);
      this.logger.error(`Restore of ${name} failed at ${step.stage}: ${step.message}`);
      failed({
        stage: step.stage,
        reason: step.message,
        rolled_back: step.rolledBack,
        ...(step.safety ? { safety_backup: step.safety } : {}),
      });
      this.events.emit({ type: 'restore_failed', name, reason: step.message, rolledBack: step.rolledBack });
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
        'Restore failed; the live database is as it was before (the safety backup holds the same state)',
        { rolled_back: true, safety_backup: step.safety, ...failure },
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
      .catch((error: unknown) => this.logger.warn(`Could not update the manifest of ${name}: ${reasonOf(error)}`));
    const reloginRequired =
      request.sessionToken !== undefined && !sessionExists(this.db, hashSessionToken(request.sessionToken));
    this.events.emit({ type: 'restore_succeeded', name, durationMs });
    this.logger.log(
      `Restored ${name} (${done.pages} pages) in ${Math.round(durationMs)} ms; safety backup ${done.safety.name}`,
    );
    this.restored.next({ name });
    // The replica's history stops at the old data: what follows is a new generation from a fresh snapshot.
    this.replication?.startNewGeneration('restore');
    return {
      success: true,
      restored: name,
      safety_backup: done.safety.name,
      relogin_required: reloginRequired,
      ...done.changes,
      foreign_tables: verdict.foreignTables,
    };
  }

  /** The caller's live session, to carry across the restore (re-issued to a restored admin of the same name). */
  private callerSession(request: RestoreRequest): RestoreJournalEntry['caller'] {
    if (request.sessionToken === undefined) {
      return null;
    }
    const tokenHash = hashSessionToken(request.sessionToken);
    const row = this.db
      .prepare(
        'SELECT u.username AS username, s.expires_at AS expiresAt FROM sessions s JOIN users u ON u.id = s.user_id ' +
          'WHERE s.token_hash = ?',
      )
      .get(tokenHash) as { username: string; expiresAt: number } | undefined;
    return row ? { username: row.username, tokenHash, expiresAt: Number(row.expiresAt) } : null;
  }

  private async requireBackup(name: string): Promise<void> {
    if (!(await this.files.statBackup(name))) {
      throw new ApiError(HttpStatus.NOT_FOUND, 'Backup not found');
    }
  }
}

export function kindFromName(name: string): BackupKind {
  return parseBackupName(name)?.kind ?? 'upload';
}
