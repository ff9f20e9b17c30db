import { HttpStatus, Injectable, type PipeTransform } from '@nestjs/common';
import { ApiError } from '../common/api-error';
import { validateBackupName } from './backup-name';

/** The backup name rule at the HTTP boundary: a 400 with the reason, so services receive only valid names. */
export function requireBackupName(raw: unknown): string {
  const result = validateBackupName(raw);
  if (!result.ok) {
    throw new ApiError(HttpStatus.BAD_REQUEST, result.reason);
  }
  return result.name;
}

@Injectable()
export class BackupNamePipe implements PipeTransform<unknown, string> {
  transform(value: unknown): string {
    return requireBackupName(value);
  }
}
