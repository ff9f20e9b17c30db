import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import request from 'supertest';
import { API_KEY, type TestApp } from './test-app';

export interface ListedBackup {
  name: string;
  size: number;
  created_at: number;
  kind: string;
  sha256: string | null;
  verified_at: number | null;
}

export function sha256File(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

export async function listBackups(t: TestApp): Promise<ListedBackup[]> {
  const response = await request(t.http).get('/api/backup').set('x-api-key', API_KEY).expect(200);
  return (response.body as { backups: ListedBackup[] }).backups;
}

export async function makeBackup(t: TestApp): Promise<{ name: string; size: number }> {
  const response = await request(t.http).post('/api/backup').set('x-api-key', API_KEY).expect(200);
  return (response.body as { backup: { name: string; size: number } }).backup;
}

export async function auditEvents(
  t: TestApp,
  action: string,
): Promise<Array<{ action: string; actor: string; detail: Record<string, unknown> }>> {
  const response = await request(t.http).get(`/api/audit?action=${action}`).set('x-api-key', API_KEY).expect(200);
  return response.body.events;
}

export async function usernames(t: TestApp): Promise<string[]> {
  const response = await request(t.http).get('/api/auth/users').set('x-api-key', API_KEY).expect(200);
  return (response.body.users as Array<{ username: string }>).map((u) => u.username).sort();
}

export async function addUser(t: TestApp, username: string, role = 'viewer'): Promise<number> {
  const response = await request(t.http)
    .post('/api/auth/users')
    .set('x-api-key', API_KEY)
    .send({ username, password: `${username}-password-123`, role })
    .expect(201);
  return (response.body as { user: { id: number } }).user.id;
}

/** Everything in the WAL goes into the main file, so the file's bytes are the whole database. */
export async function checkpoint(t: TestApp): Promise<void> {
  await t.dataSource.query('PRAGMA wal_checkpoint(TRUNCATE)');
}

/** Overwrites `length` bytes in the middle of the file with random bytes (a different value at each offset). */
export function corruptMiddle(file: string, length = 64): void {
  const size = fs.statSync(file).size;
  const fd = fs.openSync(file, 'r+');
  try {
    const at = Math.floor(size / 2);
    const original = Buffer.alloc(length);
    fs.readSync(fd, original, 0, length, at);
    const garbage = randomBytes(length).map((b, i) => (b === original[i] ? b ^ 0xff : b));
    fs.writeSync(fd, garbage, 0, length, at);
  } finally {
    fs.closeSync(fd);
  }
}

/** Fills page 2 (a b-tree page of the schema) with 0xFF: integrity_check must report it. */
export function corruptBtreePage(file: string): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const header = Buffer.alloc(100);
    fs.readSync(fd, header, 0, 100, 0);
    const pageSize = header.readUInt16BE(16) === 1 ? 65536 : header.readUInt16BE(16);
    fs.writeSync(fd, Buffer.alloc(pageSize, 0xff), 0, pageSize, pageSize);
  } finally {
    fs.closeSync(fd);
  }
}

export function withDb<T>(file: string, fn: (db: Database.Database) => T): T {
  const db = new Database(file, { fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** A valid SQLite database that is not this application's. */
export function foreignDatabase(file: string): void {
  const db = new Database(file);
  db.exec("CREATE TABLE recipes(id INTEGER PRIMARY KEY, title TEXT); INSERT INTO recipes(title) VALUES ('soup')");
  db.close();
}

/**
 * Grows the live database to about `bytes` with incompressible filler rows, from a second connection (the app
 * keeps running), in a few big transactions, then checkpoints.
 */
export function growDatabase(dbPath: string, bytes: number): void {
  const db = new Database(dbPath, { fileMustExist: true, timeout: 10_000 });
  try {
    db.exec('CREATE TABLE IF NOT EXISTS test_filler (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)');
    const insert = db.prepare('INSERT INTO test_filler (payload) VALUES (randomblob(4000))');
    const rows = Math.ceil(bytes / 4096);
    const perTx = 10_000;
    for (let done = 0; done < rows; done += perTx) {
      db.transaction(() => {
        for (let i = 0; i < Math.min(perTx, rows - done); i++) {
          insert.run();
        }
      }).immediate();
    }
    db.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    db.close();
  }
}

/** Names in the backups folder, hidden temp files included. */
export function folderEntries(t: TestApp): string[] {
  return fs.readdirSync(t.backupsDir).sort();
}

export function inBackups(t: TestApp, name: string): string {
  return path.join(t.backupsDir, name);
}

/**
 * sha256 over every row of every table (by rowid), read through a separate read-only connection, leaving out
 * `exclude`. A refused restore still writes its audit row (and the manifest's verdict), so the file's bytes cannot
 * stay identical; everything else must.
 */
export function contentDigest(dbPath: string, exclude: string[] = ['audit_log', 'backup_manifests']): string {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const hash = createHash('sha256');
    const tables = (
      db.prepare("SELECT name, sql FROM sqlite_schema WHERE type IN ('table', 'index') ORDER BY name").all() as Array<{
        name: string;
        sql: string | null;
      }>
    ).filter((t) => !exclude.includes(t.name));
    for (const table of tables) {
      hash.update(`${table.name}\n${table.sql ?? ''}\n`);
      const isTable = table.sql?.startsWith('CREATE TABLE') ?? false;
      if (isTable && !table.name.startsWith('sqlite_')) {
        for (const row of db.prepare(`SELECT * FROM "${table.name}" ORDER BY rowid`).all()) {
          hash.update(JSON.stringify(row));
        }
      }
    }
    return hash.digest('hex');
  } finally {
    db.close();
  }
}
