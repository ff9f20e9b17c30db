import { ApiProperty } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { Allow, IsInt, IsOptional, Max, Min } from 'class-validator';

const EXAMPLE_SHA = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';

export class RemoteBackupDto {
  /** @example mc-backup-2026-01-01_03-00-00.db */
  name: string;
  /** Bytes of the plain backup (from its manifest); null when unknown. */
  @ApiProperty({ type: Number, nullable: true, example: 4096000 })
  size: number | null;
  /** Stored in the age format (`<name>.age`). @example true */
  encrypted: boolean;
  /** Hex sha256 of the plain backup (from its manifest); null when unknown. */
  @ApiProperty({ type: String, nullable: true, example: EXAMPLE_SHA })
  sha256: string | null;
  /** Unix seconds the object was stored. @example 1767236410 */
  uploaded_at: number;
  /** Bytes of the stored object. @example 4097184 */
  object_size: number;
}

export class RemoteListQueryDto {
  /** At most this many copies (1–1000); every copy when absent. @example 20 */
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1000)
  limit?: number;
  /** Skip this many of the newest first. @example 0 */
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  offset?: number;
}

export class RemoteListDto {
  /**
   * Newest first (by the time in the name; a name later than now, made while a clock was ahead, after the
   * others).
   */
  backups: RemoteBackupDto[];
  /** @example mission-control-backups */
  bucket: string;
  /** @example mission-control/ */
  prefix: string;
  /** Copies in the bucket under the prefix, all pages together. @example 1 */
  total: number;
  /** How many of the newest were skipped (the `offset` asked for). @example 0 */
  offset: number;
}

export class RemoteSyncDto {
  /** Backups this call uploaded. @example 1 */
  uploaded: number;
  /** Backups still waiting that this call did not try (queued meanwhile, or interrupted by a shutdown). @example 0 */
  pending: number;
  /** Backups this call tried and failed to upload; retried with back-off. @example 0 */
  failed: number;
}

export class RemoteNameDto {
  /** @example mc-backup-2026-01-01_03-00-00.db */
  @ApiProperty({ type: String, example: 'mc-backup-2026-01-01_03-00-00.db' })
  @Allow()
  name: unknown;
}

/** What a verify could check: the stored object's size and hash, decryption, the backup's hash and database. */
export const VERIFY_CHECKS = ['object_size', 'object_sha256', 'decrypt', 'size', 'sha256', 'integrity'] as const;
export type VerifyCheck = (typeof VERIFY_CHECKS)[number];

export class RemoteVerifyDto {
  /**
   * True when every check in `checked` passed and they cover the backup itself (decrypted, hashed, integrity
   * checked); false when any failed; null when only the stored object could be checked (encrypted, no identity
   * configured) and it matched.
   */
  @ApiProperty({ type: Boolean, nullable: true, example: true })
  ok: boolean | null;
  /** @example mc-backup-2026-01-01_03-00-00.db */
  name: string;
  /** The stored bytes against the manifest's object_sha256. */
  @ApiProperty({ enum: ['match', 'mismatch', 'missing'], example: 'match' })
  object: 'match' | 'mismatch' | 'missing';
  /** False without an identity (or for a plaintext object, which needs none). @example true */
  decrypted: boolean;
  /** integrity_check of the decrypted copy: `ok` or its first problem; null when not decrypted. */
  @ApiProperty({ type: String, nullable: true, example: 'ok' })
  integrity: string | null;
  /** The decrypted copy's sha256 against the manifest; null when not decrypted. */
  @ApiProperty({ type: String, nullable: true, enum: ['match', 'mismatch'], example: 'match' })
  checksum: 'match' | 'mismatch' | null;
  /** What was checked, in order (the first failing check ends the list). */
  @ApiProperty({
    type: [String],
    enum: VERIFY_CHECKS,
    example: ['object_sha256', 'decrypt', 'sha256', 'integrity'],
  })
  checked: VerifyCheck[];
}

export class PulledBackupDto {
  /** @example mc-backup-2026-01-01_03-00-00.db */
  name: string;
  /** @example 4096000 */
  size: number;
  /** @example 1767236400 */
  created_at: number;
  @ApiProperty({ enum: ['manual', 'scheduled', 'upload', 'safety'], example: 'manual' })
  kind: string;
}

export class PullResponseDto {
  /** @example true */
  success: boolean;
  backup: PulledBackupDto;
}
