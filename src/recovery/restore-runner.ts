import { Inject, Injectable, Logger } from '@nestjs/common';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import type { AuditActor } from '../audit/audit.service';
import { Clock } from '../common/clock';
import type { RequestMeta } from '../common/request-meta';
import { AppConfig } from '../config/app-config';
import { FaultPoints } from '../config/fault-points';
import { MIGRATIONS, SCHEMA_VERSION } from '../database/migrations';
import { SQLITE_HANDLE, SqliteHandle } from '../database/sqlite-handle';
import { BackupFiles, type ScratchCopy, type SnapshotInfo } from '../backups/backup-files';
import { SAFETY_PREFIX } from '../backups/backup-name';
import { runCarryOverWorker, runProbeWorker, SnapshotError, type SnapshotResult } from '../sqlite/snapshot';
import { ADMIN_CHECK_FAILED, type CarryOverResult } from './carry-over';
import { CommitWatch } from './commit-watch';
import { newRestoreId, RestoreJournal, type RestoreJournalEntry } from './restore-journal';
import { type AuditRow, insertAudit, restoreRecorded, type RestoreChanges } from './restore-state';

/** A restore step failed. `rolledBack`: the live database holds exactly what it held before (the safety copy). */
export class RestoreStepError extends Error {
  constructor(
    readonly stage: string,
    message: string,
    readonly rolledBack: boolean,
    readonly safety: string | null,
  ) {
    super(message);
    this.name = 'RestoreStepError';
  }
}

export interface RestoreRun {
  name: string;
  /** Newest migration of the backup; older ones are migrated in the scratch copy. */
  schemaVersion: number | null;
  /** The sha256 of the bytes that were verified (integrity_check and every table read), when it was computed. */
  verifiedSha256: string | null;
  /**
   * The scratch copy of the backup, begun by the caller beside the verify (they read the same file on two cores);
   * the runner owns it from here and discards it.
   */
  scratch: Promise<ScratchCopy>;
  /** The safety copy, begun by the caller beside the verify ({@link RestoreRunner.beginSafetyCopy}). */
  safety: EarlySafetyCopy;
  actor: AuditActor;
  meta: Partial<RequestMeta>;
  caller: RestoreJournalEntry['caller'];
  /** Extra detail for the audit event. */
  detail: Record<string, unknown>;
}

/** A safety copy of the live database begun before the write lock, and what tells whether it is still current. */
export interface EarlySafetyCopy {
  copy: Promise<{ tmp: string; result: SnapshotResult }>;
  /** Null when it could not be opened: the copy is then never trusted. */
  watch: CommitWatch | null;
  abort: AbortController;
  startedMs: number;
}

/** How long the watch's reads may wait for a lock (a read in WAL mode waits only on a WAL restart or a recovery). */
const WATCH_BUSY_TIMEOUT_MS = 1000;

export interface RestoreDone {
  safety: SnapshotInfo;
  pages: number;
  changes: RestoreChanges;
  /** The copy committed but could not yet be made durable: the journal stays for start-up to settle. */
  durable: boolean;
}

export interface RecoveryOutcome {
  name: string;
  result: 'unchanged' | 'completed';
}

export const RESTORE_EVENT = 'backup_restore';
export const RESTORE_FAILED_EVENT = 'backup_restore_failed';

/**
 * The part of a restore that changes the live database, and the start-up pass that settles one a crash cut short.
 *
 * The backup is copied into a scratch file first (and migrated there when older), and a safety copy of the live
 * database is begun beside it. Then, while the restore worker holds the live database's write lock: the safety copy
 * is published if nobody committed since it began (taken again otherwise), the live state that a restore keeps (the carried
 * tables, the whole audit log, the caller's session) is read and written into the scratch file together with this
 * restore's own `backup_restore` event (in a worker thread: carry-over.ts), the result is checked, and only then are its pages copied in and committed
 * as one transaction. Nobody can write between the safety copy and the commit, and nothing is written after it: a
 * failure anywhere leaves the live database exactly as the safety copy holds it, with no rollback to run, and no
 * acknowledged write of anyone can be lost. The event committed with the copy is the restore's token: start-up
 * reads it to know, not guess, whether the copy landed.
 */
@Injectable()
export class RestoreRunner {
  private readonly logger = new Logger(RestoreRunner.name);
  readonly journal: RestoreJournal;

  constructor(
    private readonly files: BackupFiles,
    private readonly config: AppConfig,
    private readonly clock: Clock,
    private readonly faults: FaultPoints,
    @Inject(SQLITE_HANDLE) private readonly db: SqliteHandle,
  ) {
    this.journal = new RestoreJournal(config.dbPath);
  }

  /** Written before the backup is verified, so a restore killed at any point leaves a trace start-up audits. */
  begin(name: string, actor: AuditActor, mode: RestoreJournalEntry['mode'], caller: RestoreJournalEntry['caller']) {
    const entry: RestoreJournalEntry = {
      version: 2,
      id: newRestoreId(),
      mode,
      name,
      stage: 'started',
      startedAt: this.clock.nowSeconds(),
      actor: { id: actor.id, username: actor.username },
      safety: null,
      caller,
    };
    this.journal.write(entry);
    return entry;
  }

  async run(started: RestoreJournalEntry, request: RestoreRun): Promise<RestoreDone> {
    let entry = started;
    let scratch: string;
    try {
      scratch = await this.prepareScratch(request);
    } catch (error) {
      await this.discardSafetyCopy(request.safety);
      throw new RestoreStepError('prepare', `could not prepare the backup (${reasonOf(error)})`, false, null);
    }
    let safety: SnapshotInfo | undefined;
    let changes: RestoreChanges | undefined;
    let stage = 'safety_backup';
    try {
      // Finished before the write lock is taken, so that writers wait only for what must happen under it.
      await request.safety.copy.catch(() => undefined);
      const copy = await this.files.restoreTempInto(scratch, this.config.dbPath, {
        // The shipper must see the restore's frames (and the commits before it) before anyone checkpoints them.
        checkpoint: !this.config.replication,
        whileLocked: async (): Promise<void> => {
          await this.faults.reach('locked');
          safety = await this.safetyCopy(request.safety);
          stage = 'carry_over';
          entry = this.journal.advance(entry, { stage: 'copying', safety: safety.name });
          const event = this.auditRow(
            entry,
            RESTORE_EVENT,
            { name: entry.name, safety_backup: safety.name, ...request.detail },
            request.meta,
          );
          const carried = await this.carryOver(scratch, entry, safety, event).catch((error: unknown) => {
            if (error instanceof SnapshotError && error.detail === ADMIN_CHECK_FAILED) {
              stage = 'health';
            }
            throw error;
          });
          changes = carried.changes;
          stage = 'health';
          if (carried.admins < 1) {
            throw new RestoreStepError('health', 'The restored database has no admin user', false, null);
          }
          await this.faults.reach('copying');
          stage = 'copy';
        },
      });
      if (!changes || !safety) {
        throw new RestoreStepError('copy', 'the restore worker never took the write lock', false, null);
      }
      this.logger.debug(`Copied ${copy.pages} pages of ${entry.name} into the live database`);
      await this.faults.reach('copied');
      this.journal.clear();
      return { safety, pages: copy.pages, changes, durable: true };
    } catch (error) {
      if (safety && restoreRecorded(this.db, entry.id, RESTORE_EVENT) && changes) {
        // The copy committed; only making it durable failed. Nothing is undone (others may have written since):
        // the journal stays, and the next start confirms the restore by its token.
        this.logger.error(`Restore of ${entry.name} committed but its fsync failed: ${reasonOf(error)}`);
        return { safety, pages: 0, changes, durable: false };
      }
      this.journal.clear();
      if (error instanceof RestoreStepError) {
        throw new RestoreStepError(error.stage, error.message, safety !== undefined, safety?.name ?? null);
      }
      throw new RestoreStepError(stage, reasonOf(error), safety !== undefined, safety?.name ?? null);
    } finally {
      await this.files.discardTemp(scratch).catch(() => undefined);
      // Published or replaced by now, unless the restore failed before the lock.
      await this.discardSafetyCopy(request.safety);
    }
  }

  /**
   * Begins the restore's safety copy before the write lock, beside the verify and the scratch copy, so that the lock
   * (which makes every writer wait) lasts the carry-over and the copy-in rather than a whole backup as well. The
   * watch begins before the copy's read transaction: if anyone commits after it, the copy may miss that write, and
   * the runner takes the safety copy again under the lock, as it always did. The caller hands it to {@link run} or
   * to {@link discardSafetyCopy}.
   */
  beginSafetyCopy(): EarlySafetyCopy {
    const startedMs = performance.now();
    const abort = new AbortController();
    let watch: CommitWatch | null = null;
    try {
      watch = new CommitWatch(this.config.dbPath, WATCH_BUSY_TIMEOUT_MS);
    } catch (error) {
      this.logger.warn(`The safety copy waits for the write lock: ${reasonOf(error)}`);
    }
    const copy =
      watch === null
        ? Promise.reject(new Error('no commit watch'))
        : this.files.copyToTemp(this.config.dbPath, { signal: abort.signal });
    // Awaited under the lock or discarded: a copy that fails before then is not an unhandled rejection.
    copy.catch(() => undefined);
    return { copy, watch, abort, startedMs };
  }

  /** Stops and removes a safety copy that was never used (a refused restore); harmless after one was published. */
  async discardSafetyCopy(early: EarlySafetyCopy): Promise<void> {
    early.watch?.close();
    early.abort.abort();
    const copy = await early.copy.catch(() => null);
    if (copy !== null) {
      await this.files.discardTemp(copy.tmp).catch(() => undefined);
    }
  }

  /** Under the write lock: the early copy when nobody has committed since it began, otherwise a new one. */
  private async safetyCopy(early: EarlySafetyCopy): Promise<SnapshotInfo> {
    const copy = await early.copy.catch(() => null);
    let current = false;
    try {
      current = copy !== null && early.watch !== null && early.watch.unchanged();
    } catch (error) {
      this.logger.warn(`Could not tell whether the safety copy is current: ${reasonOf(error)}`);
    }
    early.watch?.close();
    if (copy !== null && current) {
      return this.files.publishSnapshot(copy, SAFETY_PREFIX, this.clock.now(), early.startedMs);
    }
    if (copy !== null) {
      await this.files.discardTemp(copy.tmp).catch(() => undefined);
    }
    return this.files.snapshot(this.config.dbPath, SAFETY_PREFIX, this.clock.now());
  }

  /**
   * At start-up (and before a CLI restore), before anything else uses the database: a restore the journal names
   * either committed (its event is in the database: done) or did not (the database never changed: audited as
   * interrupted). Nothing is ever copied back, so writes made after a restore's commit are never undone.
   */
  recover(): RecoveryOutcome | null {
    const entry = this.journal.read();
    if (entry === null) {
      return null;
    }
    const outcome = (result: RecoveryOutcome['result']): RecoveryOutcome => ({ name: entry.name, result });
    if (restoreRecorded(this.db, entry.id, RESTORE_EVENT)) {
      this.logger.warn(`The restore of ${entry.name} had committed before the service stopped: it stands`);
      this.journal.clear();
      return outcome('completed');
    }
    if (!restoreRecorded(this.db, entry.id, RESTORE_FAILED_EVENT)) {
      this.logger.warn(`The restore of ${entry.name} was interrupted before it changed anything`);
      insertAudit(
        this.db,
        this.auditRow(entry, RESTORE_FAILED_EVENT, {
          name: entry.name,
          stage: 'interrupted',
          reason: 'the restore was interrupted before its copy committed; the live database was not changed',
          rolled_back: false,
          recovered_at_startup: true,
          ...(entry.safety ? { safety_backup: entry.safety } : {}),
        }),
      );
    }
    this.journal.clear();
    return outcome('unchanged');
  }

  auditRow(
    entry: RestoreJournalEntry,
    action: string,
    detail: Record<string, unknown>,
    meta: Partial<RequestMeta> = {},
  ): AuditRow {
    return {
      action,
      actor: entry.actor.username,
      actorId: entry.actor.id,
      targetId: entry.name,
      detail: { ...(entry.mode === 'offline' ? { offline: true } : {}), ...detail, restore_id: entry.id },
      ip: meta.ip ?? null,
      userAgent: meta.userAgent ?? null,
      createdAt: this.clock.nowSeconds(),
    };
  }

  /**
   * The live state a restore keeps, written into the scratch copy with the restore's event, and the admins of the
   * result: in a worker thread with its own connections, so the API keeps answering while the write lock is held.
   */
  private carryOver(
    scratch: string,
    entry: RestoreJournalEntry,
    safety: SnapshotInfo,
    event: AuditRow,
  ): Promise<CarryOverResult> {
    return runCarryOverWorker({
      live: path.resolve(this.config.dbPath),
      scratch,
      safetyRow: safetyManifestRow(safety, this.clock.nowSeconds()),
      restoreId: entry.id,
      caller: entry.caller,
      now: this.clock.nowSeconds(),
      // Stored as JSON in the end: sent as JSON's own reading of it, so the clone cannot differ from it.
      event: { ...event, detail: JSON.parse(JSON.stringify(event.detail)) as AuditRow['detail'] },
    });
  }

  /**
   * The backup in a scratch temp file, migrated to this build's schema on their own connection (the live database
   * never runs a restore's migrations), then the same check health runs on the live database, unless the scratch
   * holds, byte for byte (same sha256), what the verify just checked with more than that check does. A backup that
   * changed since its verify is refused here. The caller discards it.
   */
  private async prepareScratch(request: RestoreRun): Promise<string> {
    const { tmp, sha256 } = await request.scratch;
    try {
      if (sha256 !== null && request.verifiedSha256 !== null && sha256 !== request.verifiedSha256) {
        throw new Error('the backup changed after it was verified');
      }
      const migrating = request.schemaVersion !== null && request.schemaVersion < SCHEMA_VERSION;
      if (migrating) {
        await migrate(tmp);
      } else if (sha256 !== null && sha256 === request.verifiedSha256) {
        return tmp;
      }
      const check = await runProbeWorker(tmp);
      if (!check.ok) {
        throw new Error(`The scratch copy failed its check: ${check.quickCheck}`);
      }
      return tmp;
    } catch (error) {
      await this.files.discardTemp(tmp).catch(() => undefined);
      throw error;
    }
  }
}

async function migrate(file: string): Promise<void> {
  const scratch = new DataSource({
    type: 'better-sqlite3',
    database: file,
    migrations: MIGRATIONS,
    migrationsTransactionMode: 'each',
    logging: false,
  });
  try {
    await scratch.initialize();
    await scratch.runMigrations({ transaction: 'each' });
  } finally {
    if (scratch.isInitialized) {
      await scratch.destroy().catch(() => undefined);
    }
  }
}

/** The manifest row of the safety copy, carried into the restored data with the others. */
export function safetyManifestRow(safety: SnapshotInfo, now: number): Record<string, unknown> {
  return {
    name: safety.name,
    kind: 'safety',
    sha256: safety.sha256,
    size: safety.size,
    page_count: safety.pages,
    sqlite_version: safety.sqliteVersion,
    schema_version: safety.schemaVersion,
    quick_check: safety.quickCheck,
    checked_at: now,
    verified_at: null,
    integrity: null,
    created_at: now,
  };
}

export function reasonOf(error: unknown): string {
  const e = error as { code?: unknown; message?: unknown } | null;
  if (typeof e?.code === 'string' && e.code.startsWith('SQLITE_')) {
    return e.code;
  }
  return typeof e?.message === 'string' ? e.message.replace(/\/[^\s'"]+/g, '<path>') : 'unknown error';
}
