import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The off-site outbox: one row per local backup to copy to the bucket, written when the backup is published and
 * kept once uploaded (it is what `GET /api/backup` reports as `offsite`). Keyed by backup name.
 */
export class OffsiteUploads1767000000000 implements MigrationInterface {
  name = 'OffsiteUploads1767000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE offsite_uploads (
        name TEXT PRIMARY KEY,
        status TEXT NOT NULL CHECK (status IN ('pending', 'uploaded', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at_ms INTEGER NOT NULL DEFAULT 0,
        first_failed_at INTEGER,
        last_error TEXT,
        enqueued_at INTEGER NOT NULL,
        uploaded_at INTEGER,
        backup_created_at INTEGER NOT NULL,
        object_name TEXT,
        object_sha256 TEXT,
        sha256 TEXT,
        size INTEGER,
        encrypted INTEGER
      )`);
    await queryRunner.query(`CREATE INDEX offsite_uploads_status ON offsite_uploads (status, next_attempt_at_ms)`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE offsite_uploads`);
  }
}
