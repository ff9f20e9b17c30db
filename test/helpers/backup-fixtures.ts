import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import request from 'supertest';
import { API_KEY, type TestApp } from './test-app';

export interface AuditEvent {
  id: number;
  action: string;
  actor: string;
  actor_id: number | null;
  detail: Record<string, unknown>;
  ip_address: string | null;
  created_at: number;
}

export interface ListedBackup {
  name: string;
  size: number;
  created_at: number;
}

export async function auditEvents(t: TestApp, action: string): Promise<AuditEvent[]> {
  const response = await request(t.http)
    .get(`/api/audit?action=${encodeURIComponent(action)}&limit=1000`)
    .set('x-api-key', API_KEY)
    .expect(200);
  return (response.body as { events: AuditEvent[] }).events;
}

export async function listBackups(t: TestApp): Promise<{ backups: ListedBackup[]; dir: string }> {
  const response = await request(t.http).get('/api/backup').set('x-api-key', API_KEY).expect(200);
  return response.body as { backups: ListedBackup[]; dir: string };
}

/** SQLite's live files: never opened raw in this process (see live-db-tripwire.ts). */
const LIVE_DATABASE_FILE = /^mission-control\.db(-wal|-shm|-journal)?$/;

export function sha256(file: string): string {
  if (LIVE_DATABASE_FILE.test(path.basename(file))) {
    // Hashed by another process: closing a descriptor of the live database here would drop this process's locks.
    const result = spawnSync('sha256sum', [file], { encoding: 'utf8' });
    if (result.status !== 0) {
      throw new Error(`sha256sum failed: ${result.stderr}`);
    }
    return result.stdout.split(' ')[0];
  }
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** lstat-based: true for a dangling symlink too. */
export function exists(file: string): boolean {
  try {
    fs.lstatSync(file);
    return true;
  } catch {
    return false;
  }
}

/** A small, valid rollback-journal SQLite file holding one marker row, as a stand-in for an older backup. */
export function writeSqliteFile(file: string, marker = path.basename(file)): void {
  const db = new Database(file);
  try {
    db.exec('CREATE TABLE marker(label TEXT NOT NULL)');
    db.prepare('INSERT INTO marker(label) VALUES (?)').run(marker);
  } finally {
    db.close();
  }
}

/** Opens a backup read-only (never creating -wal/-shm beside it), runs `fn`, and closes it. */
export function readBackup<T>(file: string, fn: (db: Database.Database) => T): T {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

export function integrityOf(file: string): string {
  return readBackup(file, (db) => String(db.pragma('integrity_check', { simple: true })));
}

/**
 * Every entry under `root` (recursively, symlinks not followed) with what it is and, for files, a hash of its
 * bytes. Names in `contentFree` are recorded as present without their bytes (files another connection may touch).
 */
export function snapshotTree(root: string, contentFree: readonly string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string): void => {
    for (const name of fs.readdirSync(dir)) {
      const full = path.join(dir, name);
      const rel = path.relative(root, full);
      const st = fs.lstatSync(full);
      if (st.isSymbolicLink()) {
        out[rel] = `link -> ${fs.readlinkSync(full)}`;
      } else if (st.isDirectory()) {
        out[rel] = 'dir';
        walk(full);
      } else if (contentFree.includes(rel)) {
        out[rel] = 'file';
      } else {
        out[rel] = `file ${sha256(full)}`;
      }
    }
  };
  walk(root);
  return out;
}

/** A name of the shape BackupFiles gives its temporary copies. */
export function tempFileName(): string {
  return `.mc-tmp-${randomBytes(12).toString('hex')}.db.part`;
}

export interface WriterProcess {
  child: ChildProcess;
  /** Resolves once the writer has committed its first rows. */
  ready: Promise<void>;
  /** Stops the writer and reports how many inserts it made and how many failed. */
  stop(): Promise<{ rows: number; failures: number; errors: string }>;
}

const WRITER_SOURCE = `
const Database = require(process.argv[1]);
const db = new Database(process.argv[2], { fileMustExist: true, timeout: 5000 });
db.pragma('busy_timeout = 5000');
db.exec('CREATE TABLE IF NOT EXISTS writer_rows(id INTEGER PRIMARY KEY, at INTEGER NOT NULL, pad BLOB)');
const insert = db.prepare('INSERT INTO writer_rows(at, pad) VALUES (?, randomblob(2048))');
let rows = 0;
let failures = 0;
const timer = setInterval(() => {
  try {
    insert.run(Date.now());
    rows += 1;
    if (rows === 20) process.stdout.write('ready\\n');
  } catch (err) {
    failures += 1;
    process.stderr.write(String(err && err.code) + ': ' + String(err && err.message) + '\\n');
  }
}, 3);
process.on('SIGTERM', () => {
  clearInterval(timer);
  db.close();
  process.stdout.write('done ' + rows + ' ' + failures + '\\n');
  process.exit(0);
});
`;

/** Another process (not a thread of the app) that inserts a row into `dbPath` every few milliseconds. */
export function startWriter(dbPath: string): WriterProcess {
  const child = spawn(process.execPath, ['-e', WRITER_SOURCE, require.resolve('better-sqlite3'), dbPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.includes('ready\n')) {
        resolve();
      }
    });
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    void exited.then(() => reject(new Error(`writer exited early: ${stderr}`)));
  });
  return {
    child,
    ready,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
      }
      await exited;
      const m = /done (\d+) (\d+)/.exec(stdout);
      return { rows: m ? Number(m[1]) : -1, failures: m ? Number(m[2]) : -1, errors: stderr };
    },
  };
}

/** Kills a child process that may still run (for afterEach), by its own handle. */
export async function killIfRunning(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) {
    return;
  }
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** Mounts a small tmpfs over `dir` when this process may (root with CAP_SYS_ADMIN); else says why not. */
export function mountTmpfs(dir: string, size: string): { ok: true } | { ok: false; reason: string } {
  if (process.platform !== 'linux') {
    return { ok: false, reason: `tmpfs needs Linux, this is ${process.platform}` };
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return { ok: false, reason: 'mounting a tmpfs needs root' };
  }
  const result = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], {
    encoding: 'utf8',
  });
  if (result.error || result.status !== 0) {
    return { ok: false, reason: `mount failed: ${(result.error?.message ?? result.stderr).trim()}` };
  }
  return { ok: true };
}

/**
 * Whether this process can mount a tmpfs (root on Linux), probed once on a scratch folder. Tests that need one
 * are declared with `it.skip` otherwise, so a run that could not check a full disk shows it as skipped.
 */
export function tmpfsAvailable(): { ok: true } | { ok: false; reason: string } {
  const probe = mkdtempSync(path.join(tmpdir(), 'mc-tmpfs-probe-'));
  try {
    const mounted = mountTmpfs(probe, '64k');
    if (mounted.ok) {
      unmount(probe);
    }
    return mounted;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

export function unmount(dir: string): void {
  const result = spawnSync('umount', [dir], { encoding: 'utf8' });
  if (result.error || result.status !== 0) {
    throw new Error(`umount ${dir} failed: ${(result.error?.message ?? result.stderr).trim()}`);
  }
}
