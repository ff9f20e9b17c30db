import { compareNewestFirst, parseBackupName } from '../backups/backup-name';
import { Inject, Injectable } from '@nestjs/common';
import { Clock } from '../common/clock';
import type { OffsiteCopyView, OffsiteProgressView, RemoteCopyTracker } from '../common/remote-copies';
import { SQLITE_HANDLE, type SqliteHandle } from '../database/sqlite-handle';
import { FUTURE_SLACK_MS, type KnownCopy } from './remote-catalog';

/** Back-off after the n-th failure: 30 s, 1 min, 2 min … capped at 1 hour. */
export const BACKOFF_BASE_MS = 30_000;
export const BACKOFF_MAX_MS = 60 * 60 * 1000;

export function backoffMs(attempts: number): number {
  return Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, Math.min(attempts - 1, 20)));
}

export interface OutboxRow {
  name: string;
  status: 'pending' | 'uploaded' | 'failed';
  attempts: number;
  next_attempt_at_ms: number;
  first_failed_at: number | null;
  last_error: string | null;
  enqueued_at: number;
  uploaded_at: number | null;
  backup_created_at: number;
  object_name: string | null;
  object_sha256: string | null;
  sha256: string | null;
  size: number | null;
  encrypted: number | null;
}

export interface UploadedFacts {
  objectName: string;
  objectSha256: string;
  sha256: string;
  size: number;
  encrypted: boolean;
}

/**
 * The durable outbox (table `offsite_uploads`), through the raw better-sqlite3 handle: every statement is
 * synchronous, so a row is written inside the very event that publishes a backup, before its request returns and
 * before local retention runs. One row per backup; kept once uploaded, as the record of its off-site copy.
 */
@Injectable()
export class OffsiteOutbox implements RemoteCopyTracker {
  constructor(
    @Inject(SQLITE_HANDLE) private readonly db: SqliteHandle,
    private readonly clock: Clock,
  ) {}

  /** Queues `name` unless it already has a row. Returns true when a row was added. */
  enqueue(name: string, backupCreatedAt: number): boolean {
    const result = this.db
      .prepare(
        `INSERT OR IGNORE INTO offsite_uploads (name, status, attempts, next_attempt_at_ms, enqueued_at, backup_created_at)
         VALUES (?, 'pending', 0, 0, ?, ?)`,
      )
      .run(name, this.clock.nowSeconds(), backupCreatedAt);
    return result.changes > 0;
  }

  /** Records a copy that is known to be in the bucket already (pulled from it). */
  recordUploaded(name: string, backupCreatedAt: number, facts: UploadedFacts): void {
    this.enqueue(name, backupCreatedAt);
    this.markUploaded(name, facts);
  }

  get(name: string): OutboxRow | null {
    return (this.db.prepare('SELECT * FROM offsite_uploads WHERE name = ?').get(name) as OutboxRow | undefined) ?? null;
  }

  all(): OutboxRow[] {
    return this.db.prepare('SELECT * FROM offsite_uploads').all() as OutboxRow[];
  }

  /**
   * Rows not uploaded yet, newest backup first (after an outage the newest copy matters most); only those due at
   * `dueAtMs` unless it is absent.
   */
  waiting(options: { dueAtMs?: number } = {}): OutboxRow[] {
    const rows = (
      this.db.prepare(`SELECT * FROM offsite_uploads WHERE status != 'uploaded'`).all() as OutboxRow[]
    ).sort(newestFirst);
    return options.dueAtMs === undefined ? rows : rows.filter((row) => row.next_attempt_at_ms <= options.dueAtMs!);
  }

  /** What this machine knows of the objects it uploaded (or pulled), by object name: listing needs no manifest. */
  knownCopies(): Map<string, KnownCopy> {
    const rows = this.db
      .prepare(
        `SELECT name, object_name, sha256, size FROM offsite_uploads WHERE status = 'uploaded' AND object_name IS NOT NULL`,
      )
      .all() as { name: string; object_name: string; sha256: string | null; size: number | null }[];
    return new Map(rows.map((row) => [row.object_name, { name: row.name, sha256: row.sha256, size: row.size }]));
  }

  /** When the next waiting row is due (ms), or null when nothing waits. */
  nextDueMs(): number | null {
    const row = this.db
      .prepare(`SELECT MIN(next_attempt_at_ms) AS due FROM offsite_uploads WHERE status != 'uploaded'`)
      .get() as { due: number | null };
    return row.due;
  }

  /** The object was written (before its manifest): remembered so a retry can recognise it after a crash. */
  rememberObject(name: string, objectName: string, objectSha256: string): void {
    this.db
      .prepare('UPDATE offsite_uploads SET object_name = ?, object_sha256 = ? WHERE name = ?')
      .run(objectName, objectSha256, name);
  }

  markUploaded(name: string, facts: UploadedFacts): void {
    this.db
      .prepare(
        `UPDATE offsite_uploads SET status = 'uploaded', uploaded_at = ?, last_error = NULL, first_failed_at = NULL,
           object_name = ?, object_sha256 = ?, sha256 = ?, size = ?, encrypted = ?
         WHERE name = ?`,
      )
      .run(
        this.clock.nowSeconds(),
        facts.objectName,
        facts.objectSha256,
        facts.sha256,
        facts.size,
        facts.encrypted ? 1 : 0,
        name,
      );
  }

  /** Counts the failure and schedules the next try with exponential back-off. Returns the attempts so far. */
  markFailed(name: string, error: string): number {
    const row = this.get(name);
    const attempts = (row?.attempts ?? 0) + 1;
    this.db
      .prepare(
        `UPDATE offsite_uploads SET status = 'failed', attempts = ?, last_error = ?, next_attempt_at_ms = ?,
           first_failed_at = COALESCE(first_failed_at, ?)
         WHERE name = ?`,
      )
      .run(attempts, error, this.clock.nowMs() + backoffMs(attempts), this.clock.nowSeconds(), name);
    return attempts;
  }

  /** A restart or `sync` tries every waiting row now, back-off or not. */
  makeAllDue(): void {
    this.db.prepare(`UPDATE offsite_uploads SET next_attempt_at_ms = 0 WHERE status != 'uploaded'`).run();
  }

  remove(name: string): void {
    this.db.prepare('DELETE FROM offsite_uploads WHERE name = ?').run(name);
  }

  // ------------------------------------------------------------ RemoteCopyTracker

  copyOf(name: string): OffsiteCopyView {
    const row = this.get(name);
    if (row === null) {
      // Not queued (yet): a backup published a moment ago, or one from before off-site was turned on that the
      // next start-up will queue. Either way it is waiting.
      return { status: 'pending', uploaded_at: null, error: null, in_bucket: null };
    }
    return {
      status: row.status,
      uploaded_at: row.uploaded_at,
      error: row.status === 'failed' ? row.last_error : null,
      in_bucket: row.status === 'uploaded' ? true : null,
    };
  }

  awaitingUpload(): ReadonlySet<string> {
    const rows = this.db.prepare(`SELECT name FROM offsite_uploads WHERE status != 'uploaded'`).all() as {
      name: string;
    }[];
    return new Set(rows.map((row) => row.name));
  }

  progress(): OffsiteProgressView {
    // A backup named later than now (made while the clock was ahead) never counts as the newest.
    const latest = Math.floor((this.clock.nowMs() + FUTURE_SLACK_MS) / 1000);
    const row = this.db
      .prepare(
        `SELECT
           SUM(CASE WHEN status != 'uploaded' THEN 1 ELSE 0 END) AS pending,
           MAX(uploaded_at) AS last_uploaded_at,
           MIN(CASE WHEN status = 'failed' THEN first_failed_at END) AS failing_since,
           MAX(CASE WHEN backup_created_at <= @latest THEN backup_created_at END) AS newest_backup_at,
           MAX(CASE WHEN status = 'uploaded' AND backup_created_at <= @latest THEN backup_created_at END)
             AS newest_uploaded_backup_at,
           MIN(CASE WHEN status != 'uploaded' THEN enqueued_at END) AS oldest_waiting_since
         FROM offsite_uploads`,
      )
      .get({ latest }) as {
      pending: number | null;
      last_uploaded_at: number | null;
      failing_since: number | null;
      newest_backup_at: number | null;
      newest_uploaded_backup_at: number | null;
      oldest_waiting_since: number | null;
    };
    return {
      configured: true,
      pending: row.pending ?? 0,
      lastUploadedAt: row.last_uploaded_at,
      failingSince: row.failing_since,
      newestBackupAt: row.newest_backup_at,
      newestUploadedBackupAt: row.newest_uploaded_backup_at,
      oldestWaitingSince: row.oldest_waiting_since,
      newestCopy: null,
    };
  }
}

/**
 * Newest first by the time and sequence in the name (`…_03-00-00-2.db` was made after `…_03-00-00.db`): plain text
 * order puts the suffixed one last, since "-" sorts before ".".
 */
function newestFirst(a: OutboxRow, b: OutboxRow): number {
  const pa = parseBackupName(a.name);
  const pb = parseBackupName(b.name);
  if (pa === null || pb === null) {
    return b.backup_created_at - a.backup_created_at || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0);
  }
  return compareNewestFirst({ ...pa, name: a.name }, { ...pb, name: b.name });
}
