import { Inject, Injectable, Logger } from '@nestjs/common';
import * as fs from 'node:fs';
import { DataSource } from 'typeorm';
import type { AuditActor } from '../audit/audit.service';
import { Clock } from '../common/clock';
import type { RequestMeta } from '../common/request-meta';
import { AppConfig, type RestorePausePoint } from '../config/app-config';
import { MIGRATIONS, SCHEMA_VERSION } from '../database/migrations';
import { SQLITE_HANDLE, SqliteHandle } from '../database/sqlite-handle';
import { BackupFiles, type SnapshotInfo } from './backup-files';
import { SAFETY_PREFIX } from './backup-name';
import { newRestoreId, RestoreJournal, type RestoreJournalEntry } from './restore-journal';
import {
  type AuditRow,
  auditRowsSince,
  finishRestore,
  type LiveState,
  maxAuditIdOfFile,
  readLiveState,
  readLiveStateFromFile,
  restoreRecorded,
  type RestoreChanges,
} from './restore-state';
import { runProbeWorker } from './snapshot';

/** A restore step failed. `changed` says whether the live database holds anything but its old state now. */
export class RestoreStepError extends Error {
  constructor(
    readonly stage: string,
    message: string,
    readonly rolledBack: boolean,
    readonly safety: string | null,
    /** The failure's audit event is already in the database (written with the rollback). */
    readonly audited = false,
  ) {
    super(message);
    this.name = 'RestoreStepError';
  }
}

export interface RestoreRun {
  name: string;
  /** Newest migration of the backup; older ones are migrated in a scratch copy before they are copied in. */
  schemaVersion: number | null;
  actor: AuditActor;
  meta: Partial<RequestMeta>;
  caller: RestoreJournalEntry['caller'];
  /** Extra detail for the audit event. */
  detail: Record<string, unknown>;
}

export interface RestoreDone {
  safety: SnapshotInfo;
  pages: number;
  changes: RestoreChanges;
}

export interface RecoveryOutcome {
  name: string;
  result: 'unchanged' | 'completed' | 'rolled_back' | 'rollback_failed';
}

const RESTORE_EVENT = 'backup_restore';
const RESTORE_FAILED_EVENT = 'backup_restore_failed';

/**
 * The part of a restore that changes the live database, and the start-up pass that finishes or undoes one that a
 * crash cut short. Every step is recorded in the restore journal first (see restore-journal.ts).
 *
 * The live database's write lock is held from before the safety copy until the copy commits (see RestoreJob): no
 * write can be acknowledged in between, so everything acknowledged before the restore is in the safety copy, and
 * everything after it lands on the restored data. The bookkeeping afterwards is one synchronous transaction
 * (finishRestore), and the live file is only ever touched through SQLite.
 */
@Injectable()
export class RestoreRunner {
  private readonly logger = new Logger(RestoreRunner.name);
  readonly journal: RestoreJournal;

  constructor(
    private readonly files: BackupFiles,
    private readonly config: AppConfig,
    private readonly clock: Clock,
    @Inject(SQLITE_HANDLE) private readonly db: SqliteHandle,
  ) {
    this.journal = new RestoreJournal(config.dbPath);
  }

  async run(request: RestoreRun): Promise<RestoreDone> {
    let entry: RestoreJournalEntry = {
      id: newRestoreId(),
      mode: 'online',
      name: request.name,
      stage: 'started',
      startedAt: this.clock.nowSeconds(),
      actor: { id: request.actor.id, username: request.actor.username },
      safety: null,
      cookieBefore: null,
      swapTemp: null,
      reason: null,
      caller: request.caller,
      copiedAuditSeq: null,
    };
    this.journal.write(entry);
    const scratch = await this.prepareSource(request).catch((error: unknown) => {
      this.journal.clear();
      throw new RestoreStepError('prepare', `could not prepare the backup (${reasonOf(error)})`, false, null);
    });
    let safety: SnapshotInfo | undefined;
    let pre: LiveState | undefined;
    let pages = 0;
    try {
      const copiedAuditSeq = maxAuditIdOfFile(scratch ?? this.files.resolveInside(request.name));
      const options = {
        pauseAfterCommit: this.config.testPauseAt === 'copied',
        whileLocked: async (): Promise<void> => {
          await this.pauseAt('locked');
          safety = await this.files.snapshot(this.config.dbPath, SAFETY_PREFIX, this.clock.now());
          pre = readLiveState(this.db);
          pre.carried.get('backup_manifests')?.push(safetyManifestRow(safety, this.clock.nowSeconds()));
          entry = this.journal.advance(entry, {
            stage: 'copying',
            safety: safety.name,
            cookieBefore: this.schemaCookie(),
            copiedAuditSeq,
          });
          await this.pauseAt('copying');
        },
      };
      const copy = scratch
        ? await this.files.restoreTempInto(scratch, this.config.dbPath, options)
        : await this.files.restoreInto(request.name, this.config.dbPath, options);
      pages = copy.pages;
    } catch (error) {
      if (!safety || !pre) {
        this.journal.clear();
        throw new RestoreStepError('safety_backup', `could not take a safety backup (${reasonOf(error)})`, false, null);
      }
      if (this.schemaCookie() === entry.cookieBefore) {
        // The copy never committed: the live database is exactly what the safety copy holds.
        this.journal.clear();
        throw new RestoreStepError('copy', reasonOf(error), true, safety.name);
      }
      const rolledBack = await this.rollBack(entry, pre, 'copy', reasonOf(error));
      throw new RestoreStepError('copy', reasonOf(error), rolledBack, safety.name, rolledBack);
    } finally {
      if (scratch) {
        await this.files.discardTemp(scratch).catch(() => undefined);
      }
    }
    if (!safety || !pre) {
      throw new RestoreStepError('copy', 'the restore worker never took the write lock', false, null);
    }
    entry = this.journal.advance(entry, { stage: 'copied' });
    const changes = await this.finish(entry, pre, { pages, ...request.detail }, request.meta);
    return { safety, pages, changes };
  }

  /**
   * At start-up (and before an offline restore), before anything else uses the database: a restore the journal
   * says was cut short is finished when its copy committed and the result is healthy, else put back to its safety
   * copy; either way it is audited and the journal removed.
   */
  async recover(): Promise<RecoveryOutcome | null> {
    const entry = this.journal.read();
    if (entry === null) {
      return null;
    }
    this.logger.warn(`Found an unfinished restore of ${entry.name} (stage ${entry.stage}): finishing it`);
    const outcome = (result: RecoveryOutcome['result']): RecoveryOutcome => ({ name: entry.name, result });
    const safetyFile = entry.safety ? this.files.resolveInside(entry.safety) : null;
    if (entry.stage === 'rolling_back' && restoreRecorded(this.db, entry.id, RESTORE_FAILED_EVENT)) {
      // The rollback and its bookkeeping finished; only the journal was left.
      this.journal.clear();
      return outcome('rolled_back');
    }
    const committed =
      entry.stage === 'copied' ||
      entry.stage === 'rolling_back' ||
      (entry.stage === 'copying' && this.schemaCookie() !== entry.cookieBefore) ||
      (entry.stage === 'swapping' && entry.swapTemp !== null && !fs.existsSync(entry.swapTemp));
    if (!committed || safetyFile === null || !fs.existsSync(safetyFile)) {
      if (entry.swapTemp) {
        fs.rmSync(entry.swapTemp, { force: true });
      }
      this.auditNow(entry, RESTORE_FAILED_EVENT, {
        stage: 'interrupted',
        reason: 'the restore was interrupted before the live database changed',
        rolled_back: false,
      });
      this.journal.clear();
      return outcome('unchanged');
    }
    const pre = readLiveStateFromFile(safetyFile);
    if (entry.stage === 'rolling_back') {
      const rolledBack = await this.rollBack(entry, pre, 'interrupted', entry.reason ?? 'interrupted');
      return outcome(rolledBack ? 'rolled_back' : 'rollback_failed');
    }
    try {
      await this.finish(entry, pre, { recovered_at_startup: true }, {});
      return outcome('completed');
    } catch {
      return outcome(this.journal.read() === null ? 'rolled_back' : 'rollback_failed');
    }
  }

  /**
   * After the copy committed (online) or the file was swapped in (offline): the bookkeeping in one transaction, then
   * the health check; a failure puts the safety copy back by the same page copy and throws RestoreStepError.
   */
  async finish(
    entry: RestoreJournalEntry,
    pre: LiveState,
    detail: Record<string, unknown>,
    meta: Partial<RequestMeta>,
  ): Promise<RestoreChanges> {
    let stage = 'carry_over';
    try {
      const changes = finishRestore(this.db, pre, {
        restoreId: entry.id,
        copiedAuditSeq: entry.copiedAuditSeq ?? 0,
        keepSessions: false,
        caller: entry.caller,
        now: this.clock.nowSeconds(),
        event: this.auditRow(entry, RESTORE_EVENT, { name: entry.name, safety_backup: entry.safety, ...detail }, meta),
      });
      stage = 'health';
      await this.healthCheck();
      this.journal.clear();
      return changes;
    } catch (error) {
      const reason = error instanceof RestoreStepError ? error.message : reasonOf(error);
      this.logger.error(`Restore of ${entry.name} failed at ${stage}: ${reason}; rolling back to ${entry.safety}`);
      const rolledBack = await this.rollBack(entry, pre, stage, reason);
      throw new RestoreStepError(stage, reason, rolledBack, entry.safety, rolledBack);
    }
  }

  /** Copies the safety copy back (the same page copy), then the bookkeeping; the old sessions come back as they were. */
  private async rollBack(entry: RestoreJournalEntry, pre: LiveState, stage: string, reason: string): Promise<boolean> {
    const safety = entry.safety;
    if (safety === null) {
      return false;
    }
    const extraAudit = auditRowsSince(this.db, pre).filter((row) => !isEventOf(row, entry.id));
    const rolling = this.journal.advance(entry, { stage: 'rolling_back', reason });
    try {
      await this.pauseAt('rolling_back');
      await this.files.restoreInto(safety, this.config.dbPath, {
        pauseAfterCommit: this.config.testPauseAt === 'rollback_copied',
      });
      finishRestore(this.db, pre, {
        restoreId: rolling.id,
        copiedAuditSeq: pre.auditSeq,
        extraAudit,
        keepSessions: true,
        caller: null,
        now: this.clock.nowSeconds(),
        event: this.auditRow(rolling, RESTORE_FAILED_EVENT, {
          name: entry.name,
          stage,
          reason,
          rolled_back: true,
          safety_backup: safety,
        }),
      });
      this.journal.clear();
      return true;
    } catch (error) {
      // The journal stays at rolling_back: the next start tries again.
      this.logger.error(`ROLLBACK FAILED: restore ${safety} by hand if the next start cannot: ${reasonOf(error)}`);
      return false;
    }
  }

  /** SELECT 1, quick_check through SQLite in a worker, at least one admin. */
  private async healthCheck(): Promise<void> {
    try {
      this.db.prepare('SELECT 1').get();
    } catch {
      throw new RestoreStepError('health', 'The database does not answer', false, null);
    }
    const quick = await runProbeWorker(this.config.dbPath);
    if (quick.integrity !== 'ok') {
      throw new RestoreStepError('health', 'quick_check failed on the restored database', false, null);
    }
    const row = this.db.prepare("SELECT count(*) AS n FROM users WHERE role = 'admin'").get() as { n: number };
    if (Number(row.n) < 1) {
      throw new RestoreStepError('health', 'The restored database has no admin user', false, null);
    }
  }

  /**
   * A backup from an older schema is copied to a scratch file and migrated there, on its own connection, so the
   * live database never runs migrations while the service is using it. Null: the backup itself is current.
   */
  private async prepareSource(request: RestoreRun): Promise<string | null> {
    if (request.schemaVersion === null || request.schemaVersion >= SCHEMA_VERSION) {
      return null;
    }
    const { tmp } = await this.files.restoreBackupToTemp(request.name);
    const scratch = new DataSource({
      type: 'better-sqlite3',
      database: tmp,
      migrations: MIGRATIONS,
      migrationsTransactionMode: 'each',
      logging: false,
    });
    try {
      await scratch.initialize();
      await scratch.runMigrations({ transaction: 'each' });
      await scratch.destroy();
      return tmp;
    } catch (error) {
      if (scratch.isInitialized) {
        await scratch.destroy().catch(() => undefined);
      }
      await this.files.discardTemp(tmp).catch(() => undefined);
      throw error;
    }
  }

  private schemaCookie(): number {
    return Number(this.db.pragma('schema_version', { simple: true }));
  }

  async pauseAt(point: RestorePausePoint): Promise<void> {
    if (this.config.testPauseAt === point) {
      this.logger.warn(`MC_TEST_PAUSE_AT: the restore stops at ${point}`);
      await new Promise<never>(() => undefined);
    }
  }

  private auditRow(
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

  private auditNow(entry: RestoreJournalEntry, action: string, detail: Record<string, unknown>): void {
    const row = this.auditRow(entry, action, { name: entry.name, recovered_at_startup: true, ...detail });
    this.db
      .prepare(
        'INSERT INTO audit_log (action, actor, actor_id, target_type, target_id, detail, ip_address, user_agent, ' +
          "created_at) VALUES (?, ?, ?, 'backup', ?, ?, NULL, NULL, ?)",
      )
      .run(row.action, row.actor, row.actorId, row.targetId, JSON.stringify(row.detail), row.createdAt);
  }
}

function isEventOf(row: Record<string, unknown>, restoreId: string): boolean {
  return typeof row.detail === 'string' && row.detail.includes(`"restore_id":"${restoreId}"`);
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

function reasonOf(error: unknown): string {
  const e = error as { code?: unknown; message?: unknown } | null;
  if (typeof e?.code === 'string' && e.code.startsWith('SQLITE_')) {
    return e.code;
  }
  return typeof e?.message === 'string' ? e.message.replace(/\/[^\s'"]+/g, '<path>') : 'unknown error';
}
