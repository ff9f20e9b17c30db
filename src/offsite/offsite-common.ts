import { requireBackupName } from '../backups/backup-name.pipe';
import { BucketError, describeBucketError } from './offsite-bucket';

/** Injection tokens: the bucket adapter (null when off-site is not configured) and the age encrypter/decrypter. */
export const OFFSITE_BUCKET = Symbol('OFFSITE_BUCKET');
export const OFFSITE_CRYPTO = Symbol('OFFSITE_CRYPTO');
export const NOT_CONFIGURED = 'Off-site storage is not configured';
/** User metadata on every stored object: the sha256 of the plain backup it was made from. */
export const SHA256_METADATA = 'mc-sha256';

/** An error for the audit trail and the `error` field: a bucket code, or an error's code or class. */
export function reasonOf(error: unknown): string {
  if (error instanceof BucketError) {
    return error.code;
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[A-Z0-9_]{2,40}$/.test(code)) {
    return code;
  }
  return describeBucketError(error).code;
}

/** A failure named by a short code, safe to audit and to answer with. */
export class CodedError extends Error {
  constructor(readonly code: string) {
    super(code);
    this.name = 'CodedError';
  }
}

/** A backup name from a request, or a 400 (the one rule, see backup-name.pipe.ts). */
export const validName = requireBackupName;
