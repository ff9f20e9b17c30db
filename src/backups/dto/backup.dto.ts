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

/** The off-site copy of a backup (contract: "Off-site copies"). */
export class OffsiteCopyDto {
  /**
   * `off`: off-site is not configured, or a safety copy (never sent); `pending`: queued, not tried yet;
   * `uploaded`: in the bucket, checked; `failed`: the last try failed, it is retried with back-off.
   */
  @ApiProperty({ enum: ['off', 'pending', 'uploaded', 'failed'], example: 'uploaded' })
  status: 'off' | 'pending' | 'uploaded' | 'failed';
  /** Unix seconds of the upload, once uploaded. */
  @ApiProperty({ type: Number, nullable: true, example: 1767236410 })
  uploaded_at: number | null;
  /** Why the last try failed (a short code such as `HTTP 503` or `ECONNREFUSED`), while failing. */
  @ApiProperty({ type: String, nullable: true, example: null })
  error: string | null;
  /**
   * For an uploaded copy: false once the bucket no longer holds it (off-site retention deleted it, or it was
   * missing when the bucket was last listed); true otherwise. Null for a copy not uploaded.
   */
  @ApiProperty({ type: Boolean, nullable: true, example: true })
  in_bucket: boolean | null;
}

export class BackupListItemDto extends BackupDto {
  /** From the manifest; for a file without one, from the name's prefix (a foreign name reads as `upload`). */
  @ApiProperty({ enum: ['manual', 'scheduled', 'upload', 'safety'], example: 'manual' })
  kind: 'manual' | 'scheduled' | 'upload' | 'safety';
  /** Hex sha256 of the file; null until known (a file copied in by hand is hashed in the background). */
  @ApiProperty({
    type: String,
    nullable: true,
    example: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
  })
  sha256: string | null;
  /** Unix seconds of the last verification that passed, or null. */
  @ApiProperty({ type: Number, nullable: true, example: 1767240000 })
  verified_at: number | null;
  offsite: OffsiteCopyDto;
}

export class CreatedBackupDto extends BackupDto {
  @ApiProperty({ enum: ['manual', 'scheduled'], example: 'manual' })
  kind: 'manual' | 'scheduled';
  /** How long the backup took, in milliseconds. @example 812 */
  duration_ms: number;
}

export class BackupListDto {
  /** Newest first. */
  backups: BackupListItemDto[];
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
