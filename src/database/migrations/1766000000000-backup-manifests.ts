import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * What is known about each file in the backups folder: recorded when a backup is made or imported, filled in
 * lazily for files copied in by hand. Keyed by file name; a row without a file is ignored (and swept at start-up).
 */
export class BackupManifests1766000000000 implements MigrationInterface {
  name = 'BackupManifests1766000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE backup_manifests (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('manual', 'scheduled', 'upload', 'safety')),
        sha256 TEXT,
        size INTEGER,
        page_count INTEGER,
        sqlite_version TEXT,
        schema_version INTEGER,
        quick_check TEXT,
        checked_at INTEGER,
        verified_at INTEGER,
        integrity TEXT,
        created_at INTEGER NOT NULL
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE backup_manifests`);
  }
}
