import { MigrationInterface, QueryRunner } from 'typeorm';

export class InitialSchema1764000000000 implements MigrationInterface {
  name = 'InitialSchema1764000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        username TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
        created_at INTEGER NOT NULL
      )`);
    await queryRunner.query(`
      CREATE TABLE sessions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        token_hash TEXT NOT NULL UNIQUE,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        ip_address TEXT,
        user_agent TEXT
      )`);
    await queryRunner.query(`CREATE INDEX idx_sessions_user ON sessions (user_id)`);
    await queryRunner.query(`CREATE INDEX idx_sessions_expires ON sessions (expires_at)`);
    await queryRunner.query(`
      CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_by TEXT,
        updated_at INTEGER NOT NULL
      )`);
    await queryRunner.query(`
      CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        action TEXT NOT NULL,
        actor TEXT NOT NULL,
        actor_id INTEGER,
        target_type TEXT,
        target_id TEXT,
        detail TEXT NOT NULL DEFAULT '{}',
        ip_address TEXT,
        user_agent TEXT,
        created_at INTEGER NOT NULL
      )`);
    await queryRunner.query(`CREATE INDEX idx_audit_action ON audit_log (action)`);
    await queryRunner.query(`CREATE INDEX idx_audit_actor ON audit_log (actor)`);
    await queryRunner.query(`CREATE INDEX idx_audit_created ON audit_log (created_at)`);
    await queryRunner.query(`
      CREATE TABLE scheduler_tasks (
        id TEXT PRIMARY KEY,
        last_run INTEGER,
        last_success_at INTEGER,
        last_result_ok INTEGER,
        last_result_message TEXT,
        last_result_at INTEGER,
        running INTEGER NOT NULL DEFAULT 0
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const table of ['scheduler_tasks', 'audit_log', 'settings', 'sessions', 'users']) {
      await queryRunner.query(`DROP TABLE ${table}`);
    }
  }
}
