import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Allow } from 'class-validator';

export class BackupDto {
  /** @example mc-backup-2026-01-01_03-00-00.db */
  name: string;
  /** Bytes. @example 4096000 */
  size: number;
  /** Unix seconds, from the time in the name. @example 1767236400 */
  created_at: number;
}

export class CreatedBackupDto extends BackupDto {
  @ApiProperty({ enum: ['manual', 'scheduled'], example: 'manual' })
  kind: 'manual' | 'scheduled';
  /** How long the backup took, in milliseconds. @example 812 */
  duration_ms: number;
}

export class BackupListDto {
  /** Newest first. */
  backups: BackupDto[];
  /** Absolute path of the backups folder. @example /srv/mission-control/.data/backups */
  dir: string;
}

export class CreateBackupResponseDto {
  /** @example true */
  success: boolean;
  backup: CreatedBackupDto;
}

export class DeleteBackupDto {
  /** The backup file name (also accepted as `?name=`). @example mc-backup-2026-01-01_03-00-00.db */
  @ApiPropertyOptional({ type: String, example: 'mc-backup-2026-01-01_03-00-00.db' })
  @Allow()
  name?: unknown;
}

export class SuccessDto {
  /** @example true */
  success: boolean;
}
