/** `upload`: any file from outside this service's own backups (an upload, or a copy pulled from the bucket). */
export type BackupKind = 'manual' | 'scheduled' | 'upload' | 'safety';

/** Manual and scheduled backups share the contract's name; the name alone cannot tell them apart. */
export const BACKUP_PREFIX = 'mc-backup-';
export const UPLOAD_PREFIX = 'mc-upload-';
export const SAFETY_PREFIX = 'mc-safety-';

export const BACKUP_EXTENSION = '.db';
export const MAX_BACKUP_NAME_LENGTH = 255;

const KIND_BY_PREFIX: Readonly<Record<string, BackupKind>> = {
  [BACKUP_PREFIX]: 'manual',
  [UPLOAD_PREFIX]: 'upload',
  [SAFETY_PREFIX]: 'safety',
};

// Prefixes are fixed literals without regex metacharacters other than '-', which is literal outside classes.
const NAME_PATTERN = new RegExp(
  `^(${Object.keys(KIND_BY_PREFIX).join('|')})(\\d{4})-(\\d{2})-(\\d{2})_(\\d{2})-(\\d{2})-(\\d{2})(?:-([1-9]\\d{0,8}))?\\.db$`,
);

const SAFE_CHARS = /^[A-Za-z0-9._-]+$/;
const PREFIX_SHAPE = /^[A-Za-z0-9_-]*$/;

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/**
 * `<prefix>YYYY-MM-DD_HH-MM-SS.db` in UTC; seq 2 and up append `-<seq>` so that several backups taken in the
 * same second keep distinct names.
 */
export function formatBackupName(prefix: string, at: Date, seq: number): string {
  if (!PREFIX_SHAPE.test(prefix)) {
    throw new RangeError('Backup name prefix may only contain [A-Za-z0-9_-]');
  }
  if (!Number.isSafeInteger(seq) || seq < 1) {
    throw new RangeError('Backup sequence number must be a whole number of at least 1');
  }
  const ms = at.getTime();
  if (!Number.isFinite(ms)) {
    throw new RangeError('Backup time is not a valid date');
  }
  const year = at.getUTCFullYear();
  if (year < 0 || year > 9999) {
    throw new RangeError('Backup time is out of range');
  }
  const stamp =
    `${pad(year, 4)}-${pad(at.getUTCMonth() + 1)}-${pad(at.getUTCDate())}` +
    `_${pad(at.getUTCHours())}-${pad(at.getUTCMinutes())}-${pad(at.getUTCSeconds())}`;
  return `${prefix}${stamp}${seq > 1 ? `-${seq}` : ''}${BACKUP_EXTENSION}`;
}

export interface ParsedBackupName {
  prefix: string;
  kind: BackupKind;
  createdAtMs: number;
  seq: number;
}

/** Inverse of {@link formatBackupName} for our own prefixes; anything else (including `-1` suffixes) is null. */
export function parseBackupName(name: string): ParsedBackupName | null {
  if (typeof name !== 'string') {
    return null;
  }
  const m = NAME_PATTERN.exec(name);
  if (!m) {
    return null;
  }
  const [, prefix, y, mo, d, h, mi, s, seqText] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  const createdAtMs = Date.UTC(year, month - 1, day, hour, minute, second);
  // Date.UTC silently rolls 2026-02-31 over into March; a name that does not round-trip is not ours.
  const back = new Date(createdAtMs);
  if (
    back.getUTCFullYear() !== year ||
    back.getUTCMonth() !== month - 1 ||
    back.getUTCDate() !== day ||
    back.getUTCHours() !== hour ||
    back.getUTCMinutes() !== minute ||
    back.getUTCSeconds() !== second
  ) {
    return null;
  }
  const seq = seqText === undefined ? 1 : Number(seqText);
  // formatBackupName never writes "-1"; accepting it would give one backup two possible names.
  if (seqText !== undefined && seq < 2) {
    return null;
  }
  return { prefix, kind: KIND_BY_PREFIX[prefix], createdAtMs, seq };
}

export type BackupNameValidation = { ok: true; name: string } | { ok: false; reason: string };

/**
 * The contract's backup name rule. Reasons never quote the input: it may be hostile and ends up in logs and
 * error bodies.
 */
export function validateBackupName(input: unknown): BackupNameValidation {
  if (input === undefined || input === null) {
    return { ok: false, reason: 'name is required' };
  }
  if (typeof input !== 'string') {
    return { ok: false, reason: 'Backup name must be a string' };
  }
  if (input.length === 0) {
    return { ok: false, reason: 'Backup name is required' };
  }
  if (input.length > MAX_BACKUP_NAME_LENGTH) {
    return { ok: false, reason: 'Backup name is too long' };
  }
  if (input.includes('\0')) {
    return { ok: false, reason: 'Invalid backup name: contains a NUL character' };
  }
  if (input.includes('/') || input.includes('\\')) {
    return { ok: false, reason: 'Invalid backup name: contains a path separator' };
  }
  if (input.includes('..')) {
    return { ok: false, reason: 'Invalid backup name: contains ".."' };
  }
  if (!SAFE_CHARS.test(input)) {
    return { ok: false, reason: 'Invalid backup name: only letters, digits, ".", "_" and "-" are allowed' };
  }
  // Hidden names are where temporary and partial files live; they are never backups.
  if (input.startsWith('.')) {
    return { ok: false, reason: 'Invalid backup name: must not start with "."' };
  }
  if (!input.endsWith(BACKUP_EXTENSION)) {
    return { ok: false, reason: 'Invalid backup name: must end in ".db"' };
  }
  return { ok: true, name: input };
}

/** Newest first: by creation time, then by sequence number within the same second. */
export function compareNewestFirst(
  a: { createdAtMs: number; seq: number; name: string },
  b: { createdAtMs: number; seq: number; name: string },
): number {
  if (a.createdAtMs !== b.createdAtMs) {
    return b.createdAtMs - a.createdAtMs;
  }
  if (a.seq !== b.seq) {
    return b.seq - a.seq;
  }
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
