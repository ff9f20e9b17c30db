import { ApiProperty } from '@nestjs/swagger';
import { Allow } from 'class-validator';

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

export class RemoteListDto {
  /** Newest first (by the time in the name). */
  backups: RemoteBackupDto[];
  /** @example mission-control-backups */
  bucket: string;
  /** @example mission-control/ */
  prefix: string;
}

export class RemoteSyncDto {
  /** Backups whose copy is in the bucket. @example 12 */
  uploaded: number;
  /** Queued, not tried yet. @example 0 */
  pending: number;
  /** Failing; retried with back-off. @example 0 */
  failed: number;
}

export class RemoteNameDto {
  /** @example mc-backup-2026-01-01_03-00-00.db */
  @ApiProperty({ type: String, example: 'mc-backup-2026-01-01_03-00-00.db' })
  @Allow()
  name: unknown;
}

export class RemoteVerifyDto {
  /** The object matches, and (when decrypted) the backup matches and passes integrity_check. @example true */
  ok: boolean;
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
