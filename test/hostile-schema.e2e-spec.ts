import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import Database from 'better-sqlite3';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { MIGRATIONS } from '../src/database/migrations';
import {
  auditEvents,
  checkpoint,
  contentDigest,
  folderEntries,
  inBackups,
  makeBackup,
} from './helpers/recovery-fixtures';
import { startTestApp, type TestApp, withApiKey } from './helpers/test-app';

/** Issue 10, findings 1 and 3: the schema an upload or restore may carry, and files that could never be restored. */
describe('Hostile backups: schema, page size, encoding (e2e)', () => {
  let t: TestApp;

  beforeEach(async () => {
    t = await startTestApp();
  });

  afterEach(async () => {
    await t?.close();
  });

  const api = (method: 'get' | 'post' | 'put' | 'delete', url: string) => withApiKey(t.http, method, url);
  const upload = (body: Buffer) =>
    api('post', '/api/backup/upload').set('Content-Type', 'application/octet-stream').send(body);

  /** A copy of a fresh backup of the live database, changed by `change` on a connection of its own. */
  async function tamperedBackup(change: (db: Database.Database) => void): Promise<Buffer> {
    const made = await makeBackup(t);
    const file = `${t.dir}/tampered.db`;
    fs.copyFileSync(inBackups(t, made.name), file);
    const db = new Database(file);
    try {
      change(db);
    } finally {
      db.close();
    }
    const bytes = fs.readFileSync(file);
    fs.unlinkSync(file);
    return bytes;
  }

  const MALLORY = [
    'CREATE TRIGGER hide_audit AFTER INSERT ON audit_log BEGIN DELETE FROM audit_log; END',
    "CREATE TRIGGER plant_admin AFTER INSERT ON sessions BEGIN INSERT OR IGNORE INTO users (username, password_hash, role, created_at) SELECT 'mallory', password_hash, 'admin', 0 FROM users WHERE id = 1; END",
  ];

  it('should refuse an upload carrying triggers with 400 naming them, keeping nothing', async () => {
    const bytes = await tamperedBackup((db) => MALLORY.forEach((sql) => db.exec(sql)));
    const before = folderEntries(t);
    const response = await upload(bytes).expect(400);
    expect(response.body.error).toMatch(/trigger "hide_audit" is not created by this application/);
    expect(response.body.error).toMatch(/trigger "plant_admin"/);
    expect(folderEntries(t)).toEqual(before);
    expect((await auditEvents(t, 'backup_upload_failed'))[0].detail).toMatchObject({ reason: 'incompatible' });
  });

  it('should refuse to restore a hand-copied file carrying triggers, a view or a changed table, changing nothing', async () => {
    const cases: Array<[string, string, RegExp]> = [
      ['triggers', MALLORY.join(';'), /trigger "hide_audit"/],
      ['a view', 'CREATE VIEW who AS SELECT username FROM users', /view "who"/],
      ['a new column', 'ALTER TABLE users ADD COLUMN note TEXT', /table "users" differs/],
      ['an extra index', 'CREATE INDEX by_role ON users (role)', /index "by_role" on application table "users"/],
      ['a missing table', 'DROP TABLE backup_manifests', /table "backup_manifests" is missing/],
    ];
    for (const [label, sql, expected] of cases) {
      const bytes = await tamperedBackup((db) => db.exec(sql));
      const name = `mc-backup-2020-01-01_00-00-0${cases.findIndex((c) => c[0] === label)}.db`;
      fs.writeFileSync(inBackups(t, name), bytes, { mode: 0o600 });
      await checkpoint(t);
      const digest = contentDigest(t.dbPath);
      const response = await api('post', '/api/backup/restore').send({ name });
      expect([label, response.status]).toEqual([label, 400]);
      expect(response.body.error).toMatch(expected);
      expect(contentDigest(t.dbPath)).toBe(digest);
    }
    // Nothing of mallory's ever ran: a login still audits, and no second admin exists.
    await request(t.http)
      .post('/api/auth/login')
      .send({ username: 'admin', password: 'admin-password-123' })
      .expect(200);
    expect((await auditEvents(t, 'login')).length).toBeGreaterThan(0);
    const users = await api('get', '/api/auth/users').expect(200);
    expect(users.body.users.map((u: { username: string }) => u.username)).toEqual(['admin']);
  });

  it('should accept a table another process added to the live database, upload and restore, rows intact', async () => {
    // A separate process (the sqlite3 CLI) keeps its own table, with rows, in the service's live database.
    execFileSync('sqlite3', [
      t.dbPath,
      "CREATE TABLE inventory (id INTEGER PRIMARY KEY, item TEXT NOT NULL); CREATE INDEX inventory_item ON inventory (item); INSERT INTO inventory (item) VALUES ('bolt'), ('nut'), ('washer');",
    ]);
    const made = await makeBackup(t);
    const bytes = fs.readFileSync(inBackups(t, made.name));
    const uploaded = await upload(bytes).expect(201);
    expect(uploaded.body.foreign_tables).toEqual(['inventory']);
    expect((await auditEvents(t, 'backup_upload'))[0].detail).toMatchObject({ foreign_tables: ['inventory'] });

    // The live rows change, then the restore of the upload brings them back.
    await t.dataSource.query("DELETE FROM inventory WHERE item = 'nut'");
    const restored = await api('post', '/api/backup/restore').send({ name: uploaded.body.backup.name }).expect(200);
    expect(restored.body.foreign_tables).toEqual(['inventory']);
    const rows = await t.dataSource.query<Array<{ item: string }>>('SELECT item FROM inventory ORDER BY id');
    expect(rows.map((r) => r.item)).toEqual(['bolt', 'nut', 'washer']);
    // And the service's own backup of it still uploads: what it makes, it takes back.
    const again = await makeBackup(t);
    await upload(fs.readFileSync(inBackups(t, again.name))).expect(201);
  });

  it('should refuse at upload a page size other than the live database’s, saying why', async () => {
    const bytes = await tamperedBackup((db) => {
      db.pragma('page_size = 8192');
      db.exec('VACUUM');
    });
    expect(bytes.readUInt16BE(16)).toBe(8192);
    const before = folderEntries(t);
    const response = await upload(bytes).expect(400);
    expect(response.body.error).toMatch(/page size \(8192 bytes\) differs from the live database's \(4096 bytes\)/);
    expect(folderEntries(t)).toEqual(before);
  });

  it('should refuse at upload a UTF-16 database of this application, saying why', async () => {
    const file = `${t.dir}/utf16.db`;
    const raw = new Database(file);
    raw.pragma("encoding = 'UTF-16le'");
    raw.exec('CREATE TABLE x (a); DROP TABLE x');
    raw.close();
    const dataSource = new DataSource({
      type: 'better-sqlite3',
      database: file,
      migrations: MIGRATIONS,
      migrationsRun: true,
    });
    await dataSource.initialize();
    await dataSource.query(
      "INSERT INTO users (username, password_hash, role, created_at) VALUES ('admin', 'x', 'admin', 0)",
    );
    await dataSource.destroy();
    const bytes = fs.readFileSync(file);
    expect(bytes.readUInt32BE(56)).toBe(2); // UTF-16le in the header
    const response = await upload(bytes).expect(400);
    expect(response.body.error).toMatch(/UTF-16le text encoding/);
  });

  describe('decided by what SQLite reports, not by the CREATE text', () => {
    it('should refuse an upload and a restore of a virtual table hidden by a comment, naming it, running nothing', async () => {
      const bytes = await tamperedBackup((db) => {
        db.exec('CREATE VIRTUAL TABLE ft USING fts5(a)');
        const insert = db.prepare('INSERT INTO ft (a) VALUES (?)');
        for (let i = 0; i < 200; i++) {
          insert.run(`row ${i}`);
        }
        db.unsafeMode(true);
        // A damaged fts5 index: had fts5's code run on the file (integrity_check does that), it would report it.
        db.exec('DELETE FROM ft_data WHERE id > 10');
        // SQLite itself stores `CREATE VIRTUAL TABLE …`; a hostile author writes the text behind its back.
        db.pragma('writable_schema = ON');
        db.exec("UPDATE sqlite_schema SET sql = 'CREATE VIRTUAL/**/TABLE ft USING fts5(a)' WHERE name = 'ft'");
        db.pragma('writable_schema = OFF');
      });
      const before = folderEntries(t);
      const response = await upload(bytes).expect(400);
      expect(response.body.error).toMatch(/virtual table "ft" is not accepted/);
      expect(folderEntries(t)).toEqual(before);

      const name = 'mc-backup-2020-01-01_00-00-00.db';
      fs.writeFileSync(inBackups(t, name), bytes, { mode: 0o600 });
      await checkpoint(t);
      const digest = contentDigest(t.dbPath);
      const restore = await api('post', '/api/backup/restore').send({ name }).expect(400);
      expect(restore.body.error).toMatch(/virtual table "ft" is not accepted/);
      expect(contentDigest(t.dbPath)).toBe(digest);
    });

    it("should refuse an index on an application table named like one of SQLite's own, naming it", async () => {
      const bytes = await tamperedBackup((db) => {
        db.exec('CREATE UNIQUE INDEX planted ON sessions (user_id)');
        db.unsafeMode(true);
        db.pragma('writable_schema = ON');
        db.exec(
          "UPDATE sqlite_schema SET name = 'sqlite_autoindex_sessions_9', " +
            "sql = 'CREATE UNIQUE INDEX sqlite_autoindex_sessions_9 ON sessions (user_id)' WHERE name = 'planted'",
        );
        db.pragma('writable_schema = OFF');
      });
      const before = folderEntries(t);
      const response = await upload(bytes).expect(400);
      expect(response.body.error).toMatch(
        /index "sqlite_autoindex_sessions_9" on application table "sessions" is not created by this application/,
      );
      expect(folderEntries(t)).toEqual(before);
    });

    it('should refuse an upload whose foreign table references an application table, naming both', async () => {
      const bytes = await tamperedBackup((db) => {
        db.exec('CREATE TABLE pin (a INTEGER REFERENCES audit_log(id) ON DELETE RESTRICT); INSERT INTO pin VALUES (1)');
      });
      const before = folderEntries(t);
      const response = await upload(bytes).expect(400);
      expect(response.body.error).toMatch(/table "pin" references application table "audit_log"/);
      expect(folderEntries(t)).toEqual(before);
    });
  });
});
