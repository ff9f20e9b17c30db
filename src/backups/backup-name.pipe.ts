import { Injectable, type PipeTransform } from '@nestjs/common';
import { InputError } from '../common/api-error';
import { validateBackupName } from './backup-name';

/**
 * The backup name rule at the HTTP boundary: a 400 with the reason (which gives back its turn of the rate limit), so
 * services receive only valid names.
 */
export function requireBackupName(raw: unknown): string {
  const result = validateBackupName(raw);
  if (!result.ok) {
    throw new InputError(result.reason);
  }
  return result.name;
}

@Injectable()
export class BackupNamePipe implements PipeTransform<unknown, string> {
  transform(value: unknown): string {
    return requireBackupName(value);
  }
}
