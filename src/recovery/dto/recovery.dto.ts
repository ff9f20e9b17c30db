import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Allow } from 'class-validator';
import { BackupDto } from '../../backups/dto/backup.dto';

/** `{ "name" }` of an existing backup; the name rule is checked by the service (400 with the reason). */
export class BackupNameDto {
  /** The backup file name. @example mc-backup-2026-01-01_03-00-00.db */
  @ApiProperty({ type: String, example: 'mc-backup-2026-01-01_03-00-00.db' })
  @Allow()
  name?: unknown;
}

export class VerifyBackupDto extends BackupNameDto {}

export class RestoreBackupDto extends BackupNameDto {
  /**
   * Instead of `name`: restore the state as of this moment (ISO-8601 with a zone), rebuilt from the replica in the
   * bucket. @example 2026-01-02T09:14:07.250Z
   */
  @ApiPropertyOptional({ type: String, example: '2026-01-02T09:14:07.250Z' })
  @Allow()
  point_in_time?: unknown;
}

export class VerifyResultDto {
  /** integrity `ok` and the checksum not a mismatch. @example true */
  ok: boolean;
  /** @example mc-backup-2026-01-01_03-00-00.db */
  name: string;
  /** `ok`, or the first problem PRAGMA integrity_check found (or why SQLite cannot open the file). @example ok */
  integrity: string;
  /** The file's sha256 against the one recorded in its manifest when it was made or imported. */
  @ApiProperty({ enum: ['match', 'mismatch', 'unknown'], example: 'match' })
  checksum: 'match' | 'mismatch' | 'unknown';
  /** Hex sha256 of the file as it is now. */
  @ApiProperty({
    type: String,
    nullable: true,
    example: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
  })
  sha256: string | null;
}

export class UploadedBackupDto extends BackupDto {
  @ApiProperty({ enum: ['upload'], example: 'upload' })
  kind: 'upload';
}

export class UploadResponseDto {
  /** @example true */
  success: boolean;
  backup: UploadedBackupDto;
  /**
   * Tables in the file that this application does not create (another program's, kept with their data; nothing
   * executable may be attached to them). @example ["inventory"]
   */
  @ApiProperty({ type: [String], example: ['inventory'] })
  foreign_tables: string[];
}

export class RestoreResponseDto {
  /** @example true */
  success: boolean;
  /** @example mc-backup-2026-01-01_03-00-00.db */
  restored: string;
  /** The copy of the live database taken just before. @example mc-safety-2026-01-02_10-15-00.db */
  safety_backup: string;
  /**
   * True when the caller signed in with a session cookie that does not exist in the restored data (sessions are
   * whatever the restored data holds): it must log in again. @example false
   */
  relogin_required: boolean;
  /**
   * Settings whose value the restore changed (the restored data's values win).
   * @example ["general.auto_backup", "general.backup_cron"]
   */
  settings_changed: string[];
  /** Whether any account was added, removed, or had its role or password changed by the restore. @example true */
  users_changed: boolean;
  /** Accounts the restored data has and the replaced data did not. @example ["alice"] */
  users_added: string[];
  /** Accounts the replaced data had and the restored data does not. @example ["mallory"] */
  users_removed: string[];
  /**
   * Tables in the restored data that this application does not create (kept with their rows; nothing executable
   * may be attached to them). @example ["inventory"]
   */
  foreign_tables: string[];
  /** The moment asked for, with `point_in_time` only. @example 2026-01-02T09:14:07.250Z */
  @ApiPropertyOptional({ type: String, example: '2026-01-02T09:14:07.250Z' })
  point_in_time?: string;
  /** The time of the last commit applied (at or before point_in_time). @example 2026-01-02T09:14:07.118Z */
  @ApiPropertyOptional({ type: String, example: '2026-01-02T09:14:07.118Z' })
  restored_to?: string;
}

export class RestoreFailedDto {
  /** @example Restore failed; the live database was rolled back to the safety backup */
  error: string;
  /** True when the live database is back to what it was before the restore. @example true */
  rolled_back: boolean;
  /** @example mc-safety-2026-01-02_10-15-00.db */
  @ApiPropertyOptional({ example: 'mc-safety-2026-01-02_10-15-00.db' })
  safety_backup?: string;
}

export class RestoreRefusedDto {
  /** @example Backup checksum does not match its manifest */
  error: string;
  /** @example ok */
  @ApiPropertyOptional({ type: String, nullable: true, example: 'ok' })
  integrity?: string | null;
  @ApiPropertyOptional({ enum: ['match', 'mismatch', 'unknown'], example: 'mismatch' })
  checksum?: 'match' | 'mismatch' | 'unknown';
}
