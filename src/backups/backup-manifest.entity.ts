import { Column, Entity, PrimaryColumn } from 'typeorm';
import type { BackupKind } from './backup-name';

/** What is known about one file in the backups folder (see the BackupManifests1766000000000 migration). */
@Entity('backup_manifests')
export class BackupManifestEntity {
  @PrimaryColumn({ type: 'text' })
  name: string;

  @Column({ type: 'text' })
  kind: BackupKind;

  /** Hex sha256 of the file's bytes; null until known (a hand-copied file is hashed in the background). */
  @Column({ type: 'text', nullable: true })
  sha256: string | null;

  @Column({ type: 'integer', nullable: true })
  size: number | null;

  @Column({ name: 'page_count', type: 'integer', nullable: true })
  pageCount: number | null;

  @Column({ name: 'sqlite_version', type: 'text', nullable: true })
  sqliteVersion: string | null;

  /** The newest migration timestamp the backup's data carries (the application's schema version). */
  @Column({ name: 'schema_version', type: 'integer', nullable: true })
  schemaVersion: number | null;

  @Column({ name: 'quick_check', type: 'text', nullable: true })
  quickCheck: string | null;

  /** Unix seconds of the quick_check. */
  @Column({ name: 'checked_at', type: 'integer', nullable: true })
  checkedAt: number | null;

  /** Unix seconds of the last verification that passed (full integrity_check and checksum); null otherwise. */
  @Column({ name: 'verified_at', type: 'integer', nullable: true })
  verifiedAt: number | null;

  /** The last full integrity_check verdict: `ok` or its first problem. */
  @Column({ type: 'text', nullable: true })
  integrity: string | null;

  /** Unix seconds the manifest was recorded. */
  @Column({ name: 'created_at', type: 'integer' })
  createdAt: number;
}
