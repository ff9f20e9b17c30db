/**
 * Why a backup, restore, verify or upload failed, in words a client may see: a stable `reason` to branch on and a
 * short message that never carries a path or a raw exception (those go to the log, tagged with the request id).
 */
export type FailureReason = 'disk_full' | 'busy' | 'integrity' | 'io' | 'unknown';

export interface ClassifiedFailure {
  reason: FailureReason;
  message: string;
}

export const FAILURE_MESSAGES: Record<FailureReason, string> = {
  disk_full: 'no space left in the backups folder',
  busy: 'the database stayed locked',
  integrity: 'the copy failed quick_check',
  io: 'a file could not be read or written (I/O error or permissions)',
  unknown: 'an unexpected error; the server log has the details under this request id',
};

const DISK_FULL = /^(ENOSPC|EDQUOT|EFBIG|SQLITE_FULL)$/;
const BUSY = /^SQLITE_(BUSY|LOCKED)/;
const INTEGRITY = /^SQLITE_(CORRUPT|NOTADB)/;
const IO =
  /^(EIO|EACCES|EPERM|EROFS|ENOENT|ENOTDIR|EISDIR|EEXIST|EMFILE|ENFILE|EBADF|SQLITE_(IOERR|CANTOPEN|READONLY|PERM|AUTH))/;

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : typeof error === 'string' ? error : '';
}

/** Classifies by the error's code first (Node's errno names, SQLite's result codes), then by known messages. */
export function classifyFailure(error: unknown): ClassifiedFailure {
  const code = codeOf(error);
  const message = messageOf(error);
  const reason: FailureReason =
    DISK_FULL.test(code) || /no space left|database or disk is full|disk quota/i.test(message)
      ? 'disk_full'
      : BUSY.test(code) || /stayed busy|database is locked|database table is locked/i.test(message)
        ? 'busy'
        : INTEGRITY.test(code) || /quick_check|integrity_check|malformed|not a database/i.test(message)
          ? 'integrity'
          : IO.test(code) || /disk I\/O error|unable to open database|permission denied|read-only/i.test(message)
            ? 'io'
            : 'unknown';
  return { reason, message: FAILURE_MESSAGES[reason] };
}

/** For the log: the error's name, code and message (paths allowed there), without the stack of a plain throw. */
export function describeForLog(error: unknown): string {
  if (!(error instanceof Error)) {
    return String(error);
  }
  const code = codeOf(error);
  return `${error.name}${code ? ` ${code}` : ''}: ${error.message}`;
}
