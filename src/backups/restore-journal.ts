import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * How far a restore got, written before each step that changes the live database and removed when the restore
 * is finished (or undone) and audited. It lives beside the database but is not one of SQLite's files, so a restore
 * that is killed halfway leaves a record that survives the database being replaced, and the next start (or the
 * next CLI restore) finishes or undoes it: see RestoreRecovery.
 *
 * Online (POST /api/backup/restore):
 *  - `started`: the backup was verified; the live database has not been touched.
 *  - `copying`: the safety copy is published and the live database's write lock is held; the copy may or may not
 *    have committed (`cookieBefore` tells: the copy bumps the schema cookie).
 *  - `copied`: the restored pages are committed; the bookkeeping (carried tables, audit, sessions) may be missing.
 *  - `rolling_back`: the restore failed after the copy; the safety copy is being copied back.
 * Offline (the CLI, service stopped): `started`, then `swapping` (the temp file `swapTemp` is about to be renamed
 * over the database: if it is still there, it was not), `copied` and `rolling_back` as online.
 */
export type RestoreStage = 'started' | 'copying' | 'swapping' | 'copied' | 'rolling_back';

export interface RestoreJournalEntry {
  /** Ties the audit event to this restore, so finishing twice never records it twice. */
  id: string;
  mode: 'online' | 'offline';
  name: string;
  stage: RestoreStage;
  startedAt: number;
  actor: { id: number | null; username: string };
  safety: string | null;
  /** The live database's schema cookie before the copy (online). */
  cookieBefore: number | null;
  /** The offline restore's temp file beside the database. */
  swapTemp: string | null;
  /** Why the restore is being rolled back. */
  reason: string | null;
  /** The highest audit id of the data copied in (rows above it arrived after the copy). */
  copiedAuditSeq: number | null;
  /** The restoring caller's session, kept across the restore when the caller is still an admin in it. */
  caller: { username: string; tokenHash: string; expiresAt: number } | null;
}

export function newRestoreId(): string {
  return randomBytes(8).toString('hex');
}

/** Reads and writes the journal file of one database. Every write is atomic (temp, fsync, rename, fsync folder). */
export class RestoreJournal {
  readonly file: string;

  constructor(dbPath: string) {
    this.file = path.join(path.dirname(dbPath), `.${path.basename(dbPath)}.restore-journal.json`);
  }

  read(): RestoreJournalEntry | null {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (error) {
      if ((error as { code?: unknown }).code === 'ENOENT') {
        return null;
      }
      throw error;
    }
    return JSON.parse(text) as RestoreJournalEntry;
  }

  write(entry: RestoreJournalEntry): void {
    const tmp = `${this.file}.${randomBytes(4).toString('hex')}.tmp`;
    const fd = fs.openSync(tmp, 'wx', 0o600);
    try {
      fs.writeSync(fd, JSON.stringify(entry));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
    this.fsyncFolder();
  }

  advance(entry: RestoreJournalEntry, changes: Partial<RestoreJournalEntry>): RestoreJournalEntry {
    const next = { ...entry, ...changes };
    this.write(next);
    return next;
  }

  clear(): void {
    try {
      fs.unlinkSync(this.file);
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'ENOENT') {
        throw error;
      }
    }
    this.fsyncFolder();
  }

  private fsyncFolder(): void {
    const fd = fs.openSync(path.dirname(this.file), 'r');
    try {
      fs.fsyncSync(fd);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code !== 'EINVAL' && code !== 'EISDIR') {
        throw error;
      }
    } finally {
      fs.closeSync(fd);
    }
  }
}
