import { DomainError } from '../common/domain-error';

/** The upload body went past the byte cap; nothing was kept. */
export class UploadTooLargeError extends Error {
  constructor() {
    super('Upload exceeds the size limit');
    this.name = 'UploadTooLargeError';
  }
}

/** The client went away mid-upload (or the stream failed); nothing was kept. */
export class UploadInterruptedError extends Error {
  constructor() {
    super('Upload interrupted');
    this.name = 'UploadInterruptedError';
  }
}

/**
 * The named backup is not (or no longer) a regular file of the folder: it was deleted, or replaced by something
 * that is not a backup, between the caller's check and the work. Every route answers 404 for it (a verify racing a
 * delete must not answer 500), and the CLI prints the message.
 */
export class BackupNotFoundError extends DomainError {
  readonly kind = 'not_found';

  constructor() {
    super('Backup not found');
    this.name = 'BackupNotFoundError';
  }
}

export class InvalidBackupNameError extends DomainError {
  readonly kind = 'invalid';

  constructor(reason: string) {
    super(reason);
    this.name = 'InvalidBackupNameError';
  }
}
