import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { compiledBuild, compiledNodeArgs } from './helpers/cli-runner';
import { growDatabase, withDb } from './helpers/recovery-fixtures';
import { startTestApp, withApiKey } from './helpers/test-app';

/**
 * SIGKILL in the middle of an online restore, at four known points (MC_TEST_PAUSE_AT stops the restore there for
 * good), then a restart on the same files. Each time the restore journal must be finished or undone at start-up:
 * the live database passes integrity_check and holds the old state or the restored one (never a mix), every audit
 * event from before is still there plus the restore's outcome, no temporary file is left, and backups work.
 */

const API_KEY = 'restore-kill-key-0123456789';
const ROOT = path.resolve(__dirname, '..');
/**
 * Big enough that the database outgrows SQLite's page cache and the restore copies thousands of pages; the size is
 * not what makes a kill land where it should (MC_TEST_PAUSE_AT stops the restore at a named point, whatever the
 * size), so a bigger file only multiplies the copying, hashing and integrity_checks of every case.
 */
const DB_BYTES = 4 * 1024 * 1024;
let build: { mainJs: string; outDir: string };

beforeAll(() => {
  build = compiledBuild();
});

interface Service {
  proc: ChildProcess;
  port: number;
  output: () => string;
}

/** A free loopback port (the service itself must be given one: its log format is not an interface). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** The real src/main.ts, compiled once (compiledBuild), started as the service is in production. */
async function startService(dbPath: string, env: Record<string, string> = {}): Promise<Service> {
  let output = '';
  const port = await freePort();
  const proc = spawn(process.execPath, [...compiledNodeArgs(), path.join(build.outDir, 'main.js')], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      NODE_PATH: path.join(ROOT, 'node_modules'),
      PORT: String(port),
      HOST: '127.0.0.1',
      MISSION_CONTROL_DB_PATH: dbPath,
      AUTH_USER: 'admin',
      AUTH_PASS: 'admin-password-123',
      API_KEY,
      LOG_LEVEL: 'info',
      NODE_ENV: 'test',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  proc.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const service = { proc, port, output: () => output };
  const end = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) {
      throw new Error(`service exited: ${output}`);
    }
    const health = await call(port, 'GET', '/api/health').catch(() => null);
    if (health !== null) {
      return service;
    }
    if (Date.now() > end) {
      throw new Error(`service did not answer: ${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function call(
  port: number,
  method: string,
  route: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: route,
        agent: false,
        headers: { 'x-api-key': API_KEY, ...(payload ? { 'Content-Type': 'application/json' } : {}) },
      },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : {} }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

async function waitFor(what: string, probe: () => boolean, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function kill(service: Service): Promise<void> {
  if (service.proc.exitCode !== null || service.proc.signalCode !== null) {
    return;
  }
  const exited = new Promise((resolve) => service.proc.on('exit', resolve));
  service.proc.kill('SIGKILL');
  await exited;
}

function usernames(dbPath: string): string[] {
  return withDb(dbPath, (db) =>
    (db.prepare('SELECT username FROM users ORDER BY username').all() as Array<{ username: string }>).map(
      (r) => r.username,
    ),
  );
}

const CASES: Array<{ point: string; rollback: boolean; expected: 'old' | 'restored'; event: string }> = [
  { point: 'verify', rollback: false, expected: 'old', event: 'backup_restore_failed' },
  { point: 'locked', rollback: false, expected: 'old', event: 'backup_restore_failed' },
  { point: 'copying', rollback: false, expected: 'old', event: 'backup_restore_failed' },
  { point: 'copied', rollback: false, expected: 'restored', event: 'backup_restore' },
];

describe('Restore killed at four points, then restarted (e2e, child processes)', () => {
  let dir: string;
  let services: Service[] = [];

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(tmpdir(), 'mc-restore-kill-'));
  });

  afterEach(async () => {
    for (const service of services) {
      await kill(service);
    }
    services = [];
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it.each(CASES)('should recover from a SIGKILL at $point', async ({ point, rollback, expected, event }) => {
    const dbPath = path.join(dir, 'mission-control.db');
    const first = await startService(dbPath, { MC_TEST_PAUSE_AT: point });
    services.push(first);
    growDatabase(dbPath, DB_BYTES);
    if (rollback) {
      // A backup without an admin: copied in, refused by the health check, rolled back.
      withDb(dbPath, (db) => db.prepare("UPDATE users SET role = 'viewer'").run());
    }
    const made = await call(first.port, 'POST', '/api/backup');
    expect(made.status).toBe(200);
    const name = (made.body.backup as { name: string }).name;
    if (rollback) {
      withDb(dbPath, (db) => db.prepare("UPDATE users SET role = 'admin'").run());
    }
    // After the backup: a user the backup does not have, and its audit event.
    expect(
      (
        await call(first.port, 'POST', '/api/auth/users', {
          username: 'later',
          password: 'later-password-1',
          role: 'viewer',
        })
      ).status,
    ).toBe(201);
    const before = withDb(dbPath, (db) => db.prepare('SELECT * FROM audit_log ORDER BY id').all());

    void call(first.port, 'POST', '/api/backup/restore', { name }).catch(() => undefined);
    await waitFor(`the restore to stop at ${point}`, () => /MC_TEST_PAUSE_AT: the restore stops/.test(first.output()));
    await kill(first);

    await expectRecovered(dbPath, before, expected, event, name);
  });

  /** What a restart must show after any kill: the journal gone, a whole database, the audit kept, no leftovers. */
  async function expectRecovered(
    dbPath: string,
    before: unknown[],
    expected: 'old' | 'restored',
    event: string,
    backupName: string,
  ): Promise<Service> {
    const service = await startService(dbPath);
    services.push(service);
    expect(fs.existsSync(path.join(dir, '.mission-control.db.restore-journal.json'))).toBe(false);
    const integrity = spawnSync('sqlite3', [dbPath, 'PRAGMA integrity_check'], { encoding: 'utf8' });
    expect(integrity.stdout.trim()).toBe('ok');
    expect(usernames(dbPath)).toEqual(expected === 'old' ? ['admin', 'later'] : ['admin']);
    const after = withDb(dbPath, (db) => db.prepare('SELECT * FROM audit_log ORDER BY id').all());
    for (const row of before) {
      expect(after).toContainEqual(row);
    }
    const outcome = withDb(dbPath, (db) =>
      db.prepare("SELECT action FROM audit_log WHERE action IN ('backup_restore', 'backup_restore_failed')").all(),
    );
    expect(outcome).toEqual([{ action: event }]);
    // The manifest of the backup made before is carried whatever happened.
    const manifest = withDb(dbPath, (db) =>
      db.prepare('SELECT sha256 FROM backup_manifests WHERE name = ?').get(backupName),
    );
    expect(manifest).toEqual({ sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(fs.readdirSync(dir).filter((f) => f.includes('.restore-'))).toEqual([]);
    expect(fs.readdirSync(path.join(dir, 'backups')).filter((f) => f.startsWith('.mc-tmp-'))).toEqual([]);
    expect((await call(service.port, 'POST', '/api/backup')).status).toBe(200);
    return service;
  }

  describe('offline CLI restore', () => {
    it.each([
      { point: 'locked', expected: 'old' as const, event: 'backup_restore_failed' },
      { point: 'copying', expected: 'old' as const, event: 'backup_restore_failed' },
      { point: 'copied', expected: 'restored' as const, event: 'backup_restore' },
    ])('should recover from a SIGKILL of the CLI at $point', async ({ point, expected, event }) => {
      // The database the CLI finds: made by the app (in this process; what is under test here is the CLI and the
      // compiled service's start-up after it), with a backup and then a user and audit row the backup lacks.
      const first = await startTestApp({}, dir);
      const dbPath = first.dbPath;
      growDatabase(dbPath, DB_BYTES);
      const made = await withApiKey(first.http, 'post', '/api/backup').expect(200);
      const name = (made.body as { backup: { name: string } }).backup.name;
      await withApiKey(first.http, 'post', '/api/auth/users')
        .send({ username: 'later', password: 'later-password-1', role: 'viewer' })
        .expect(201);
      await first.close({ keepFiles: true });
      const before = withDb(dbPath, (db) => db.prepare('SELECT * FROM audit_log ORDER BY id').all());

      let output = '';
      const cli = spawn(process.execPath, [...compiledNodeArgs(), build.mainJs, 'backups', 'restore', name, '--yes'], {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? '',
          NODE_PATH: path.join(ROOT, 'node_modules'),
          MISSION_CONTROL_DB_PATH: dbPath,
          LOG_LEVEL: 'warn',
          MC_TEST_PAUSE_AT: point,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      cli.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      cli.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const exited = new Promise((resolve) => cli.on('exit', resolve));
      await waitFor(`the CLI restore to stop at ${point}`, () => /MC_TEST_PAUSE_AT: the restore stops/.test(output));
      cli.kill('SIGKILL');
      await exited;
      await expectRecovered(dbPath, before, expected, event, name);
    });
  });

  it('should keep every acknowledged write through a restore, foreign readers and a SIGKILL', async () => {
    const dbPath = path.join(dir, 'mission-control.db');
    const first = await startService(dbPath);
    services.push(first);
    const made = await call(first.port, 'POST', '/api/backup');
    const name = (made.body.backup as { name: string }).name;
    expect((await call(first.port, 'POST', '/api/backup/restore', { name })).status).toBe(200);
    // Another process opens and closes the database four times: it must not think it is the last user.
    for (let i = 0; i < 4; i++) {
      expect(spawnSync('sqlite3', [dbPath, 'SELECT count(*) FROM users']).status).toBe(0);
    }
    const acknowledged: string[] = [];
    for (let i = 0; i < 5; i++) {
      const username = `acked-${i}`;
      const created = await call(first.port, 'POST', '/api/auth/users', {
        username,
        password: 'acked-password-1',
        role: 'viewer',
      });
      expect(created.status).toBe(201);
      acknowledged.push(username);
    }
    await kill(first);
    const second = await startService(dbPath);
    services.push(second);
    expect(usernames(dbPath)).toEqual([...acknowledged, 'admin'].sort());
    expect((await call(second.port, 'POST', '/api/backup')).status).toBe(200);
  });
});
