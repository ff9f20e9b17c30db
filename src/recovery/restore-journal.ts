import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseBackupName, validateBackupName } from '../backups/backup-name';

/**
 * How far a restore got, written before it is verified and removed once it is settled. It lives beside the database
 * but is not one of SQLite's files, so a restore that is killed leaves a record, and the next start settles it
 * (RestoreRunner.recover): by the restore's token in the database, never by what the journal claims.
 *  - `started`: the restore was asked for; the live database has not been touched.
 *  - `copying`: the safety copy is published and the live database's write lock is held; the copy may or may not
 *    have committed (its `backup_restore` event, committed with it, tells).
 */
export type RestoreStage = 'started' | 'copying';

export interface RestoreJournalEntry {
  version: 2;
  /** Ties the audit event to this restore: the token start-up looks for. */
  id: string;
  mode: 'online' | 'offline';
  name: string;
  stage: RestoreStage;
  startedAt: number;
  actor: { id: number | null; username: string };
  safety: string | null;
  /** The restoring caller's session, kept across the restore when the caller is still an admin in it. */
  caller: { username: string; tokenHash: string; expiresAt: number } | null;
}

/** The journal cannot be trusted: start-up stops with this one line rather than act on it. */
export class RestoreJournalError extends Error {
  constructor(file: string, why: string) {
    super(`The restore journal ${file} is not valid (${why}): check the database, then move the journal aside`);
    this.name = 'RestoreJournalError';
  }
}

const MAX_JOURNAL_BYTES = 64 * 1024;
const READ_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW;

export function newRestoreId(): string {
  return randomBytes(8).toString('hex');
}

/** Reads and writes the journal file of one database. Every write is atomic (temp, fsync, rename, fsync folder). */
export class RestoreJournal {
  readonly file: string;

  constructor(dbPath: string) {
    this.file = path.join(path.dirname(dbPath), `.${path.basename(dbPath)}.restore-journal.json`);
  }

  /**
   * The entry, or null when there is none. Opened without following a link and without blocking (a FIFO never
   * hangs start-up), regular files only, size-capped, and every field checked against what this service writes.
   */
  read(): RestoreJournalEntry | null {
    let fd: number;
    try {
      fd = fs.openSync(this.file, READ_FLAGS);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === 'ENOENT') {
        return null;
      }
      throw new RestoreJournalError(this.file, code === 'ELOOP' ? 'it is a symbolic link' : String(code));
    }
    let text: string;
    try {
      const stat = fs.fstatSync(fd);
      if (!stat.isFile()) {
        throw new RestoreJournalError(this.file, 'it is not a regular file');
      }
      if (stat.size > MAX_JOURNAL_BYTES) {
        throw new RestoreJournalError(this.file, `it is larger than ${MAX_JOURNAL_BYTES} bytes`);
      }
      const buffer = Buffer.alloc(stat.size);
      const read = fs.readSync(fd, buffer, 0, stat.size, 0);
      text = buffer.subarray(0, read).toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new RestoreJournalError(this.file, 'it is not whole JSON');
    }
    const problem = entryProblem(parsed);
    if (problem !== null) {
      throw new RestoreJournalError(this.file, problem);
    }
    return parsed as RestoreJournalEntry;
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

/** Why a parsed journal is not one this service wrote, or null. */
function entryProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return 'not an object';
  }
  const entry = value as Record<string, unknown>;
  if (entry.version !== 2) {
    return 'written by another version of the service';
  }
  if (typeof entry.id !== 'string' || !/^[0-9a-f]{16}$/.test(entry.id)) {
    return 'bad id';
  }
  if (entry.mode !== 'online' && entry.mode !== 'offline') {
    return 'bad mode';
  }
  if (!validateBackupName(entry.name).ok) {
    return 'bad backup name';
  }
  if (entry.stage !== 'started' && entry.stage !== 'copying') {
    return 'bad stage';
  }
  if (typeof entry.startedAt !== 'number' || !Number.isFinite(entry.startedAt)) {
    return 'bad start time';
  }
  const actor = entry.actor as Record<string, unknown> | null;
  if (
    typeof actor !== 'object' ||
    actor === null ||
    typeof actor.username !== 'string' ||
    (actor.id !== null && typeof actor.id !== 'number')
  ) {
    return 'bad actor';
  }
  if (entry.safety !== null && (typeof entry.safety !== 'string' || parseBackupName(entry.safety)?.kind !== 'safety')) {
    return 'the safety copy is not a name the service makes';
  }
  const caller = entry.caller as Record<string, unknown> | null;
  if (
    caller !== null &&
    (typeof caller !== 'object' ||
      typeof caller.username !== 'string' ||
      typeof caller.tokenHash !== 'string' ||
      typeof caller.expiresAt !== 'number')
  ) {
    return 'bad caller';
  }
  return null;
}
