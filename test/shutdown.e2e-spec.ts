import { type ChildProcess, spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';

/**
 * Graceful shutdown, for real: the compiled service (dist/main.js) in a child process, on a database large enough that a backup
 * takes a while, SIGTERM in the middle of `POST /api/backup`, and then everything the operator relies on. And
 * `npm start` exactly as an operator (or systemd, or a container runtime) runs it: SIGTERM to npm's pid must reach
 * the service.
 */

const API_KEY = 'shutdown-test-key-0123456789';
const ROOT = path.resolve(__dirname, '..');
/** The compiled service, as production runs it (dist/, built once per test run by test/global-setup.js). */
const MAIN = path.join(ROOT, 'dist', 'main.js');
/** main.ts's first start-up line; with PORT=0 it names the port the kernel picked. */
const LISTENING = /Listening on http:\/\/127\.0\.0\.1:(\d+)/;
/** 4096 rows of 64 KiB random bytes: 256 MiB, so the copy and its quick_check take a noticeable time. */
const FILLER_ROWS = 4096;
const FILLER_BYTES = 64 * 1024;
const TEMP_FILE = /^\.mc-tmp-.*\.db\.part/;

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request on its own connection (no pooling, so a connection the server closed is never reused). */
function send(port: number, method: string, route: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: route, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The filler table, plus a checksum-like summary of it to compare after the shutdown. */
function buildLargeDatabase(dbPath: string): { rows: number; sample: string } {
  const db = new Database(dbPath);
  try {
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE filler(id INTEGER PRIMARY KEY, payload BLOB NOT NULL)');
    const insert = db.prepare('INSERT INTO filler(id, payload) VALUES (?, ?)');
    const buffer = Buffer.alloc(FILLER_BYTES * 256);
    const batch = db.transaction((first: number) => {
      randomFillSync(buffer);
      for (let i = 0; i < 256; i++) {
        insert.run(first + i, buffer.subarray(i * FILLER_BYTES, (i + 1) * FILLER_BYTES));
      }
    });
    for (let first = 1; first <= FILLER_ROWS; first += 256) {
      batch(first);
    }
    db.pragma('wal_checkpoint(TRUNCATE)');
    return fillerSummary(db);
  } finally {
    db.close();
  }
}

function fillerSummary(db: Database.Database): { rows: number; sample: string } {
  const rows = Number(db.prepare('SELECT count(*) FROM filler').pluck().get());
  const sample = db
    .prepare('SELECT hex(substr(payload, 1, 16)) FROM filler WHERE id IN (1, 2048, 4096) ORDER BY id')
    .pluck()
    .all()
    .join(',');
  return { rows, sample };
}

function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined, intervalMs = 5): Promise<T> {
  const end = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      let value: T | undefined;
      try {
        value = probe();
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      if (value !== undefined) {
        resolve(value);
      } else if (Date.now() > end) {
        reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`));
      } else {
        setTimeout(tick, intervalMs);
      }
    };
    tick();
  });
}

describe('Graceful shutdown (e2e, child process)', () => {
  let dir: string;
  let child: ChildProcess | undefined;

  beforeEach(() => {
    child = undefined;
    dir = fs.mkdtempSync(path.join(tmpdir(), 'mc-shutdown-'));
  });

  afterEach(() => {
    if (child?.pid !== undefined) {
      // The whole process group (npm's shell and node too, should they outlive npm), so a failing test never
      // leaves a server running, or a pipe open that keeps Jest waiting.
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('should finish the running backup, answer 503 to new requests, close the database and exit 0 on SIGTERM', async () => {
    const started = Date.now();
    const dbPath = path.join(dir, 'mission-control.db');
    const backupsDir = path.join(dir, 'backups');
    const before = buildLargeDatabase(dbPath);
    expect(before.rows).toBe(FILLER_ROWS);

    let output = '';
    const proc = spawn(process.execPath, [MAIN], {
      cwd: ROOT,
      detached: true,
      env: {
        ...process.env,
        PORT: '0',
        HOST: '127.0.0.1',
        MISSION_CONTROL_DB_PATH: dbPath,
        AUTH_USER: 'admin',
        AUTH_PASS: 'admin-password-123',
        API_KEY,
        LOG_LEVEL: 'info',
        SHUTDOWN_TIMEOUT_MS: '30000',
        NODE_ENV: 'test',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    proc.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    proc.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      proc.once('exit', (code, signal) => resolve({ code, signal })),
    );

    const port = await waitFor('the child to listen', 30_000, () => {
      if (proc.exitCode !== null) {
        throw new Error(`The child exited early with ${proc.exitCode}:\n${output}`);
      }
      const match = LISTENING.exec(output);
      return match ? Number(match[1]) : undefined;
    });
    const listenedAt = Date.now();

    // The backup: its response must arrive even though SIGTERM comes while it runs.
    let backupDone = false;
    const backup = send(port, 'POST', '/api/backup', { 'x-api-key': API_KEY }).finally(() => {
      backupDone = true;
    });
    await waitFor('the backup to start writing its temp file', 15_000, () => {
      if (backupDone) {
        throw new Error('The backup finished before a temp file was seen: make the database larger');
      }
      return fs.existsSync(backupsDir) && fs.readdirSync(backupsDir).some((name) => TEMP_FILE.test(name))
        ? true
        : undefined;
    });
    const signalledAt = Date.now();
    expect(proc.kill('SIGTERM')).toBe(true);

    // New work is refused while the backup runs (the first request after the signal is handled).
    let newRequest: Reply | undefined;
    while (newRequest?.status !== 503 && Date.now() - signalledAt < 5_000 && !backupDone) {
      newRequest = await send(port, 'GET', '/api/backup', { 'x-api-key': API_KEY });
    }
    expect(backupDone).toBe(false);
    expect({ status: newRequest?.status, retryAfter: newRequest?.headers['retry-after'] }).toEqual({
      status: 503,
      retryAfter: expect.stringMatching(/^\d+$/),
    });
    expect(JSON.parse(newRequest?.body ?? '')).toEqual({ error: 'The service is shutting down' });
    expect(newRequest?.headers.connection).toBe('close');
    // Health is still answered by its handler (not refused by the guard) and reports the drain, so a load
    // balancer stops sending traffic.
    const health = await send(port, 'GET', '/api/health');
    expect({ status: health.status, body: JSON.parse(health.body) as unknown }).toEqual({
      status: 503,
      body: expect.objectContaining({ status: 'error', checks: expect.any(Object) }),
    });

    const reply = await backup;
    expect(reply.status).toBe(200);
    const body = JSON.parse(reply.body) as { success: boolean; backup: { name: string; size: number } };
    expect(body.success).toBe(true);

    const { code, signal } = await exited;
    const exitedAt = Date.now();
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(output).toContain('Shut down cleanly');

    // Exactly one whole backup, no temp files.
    const files = fs.readdirSync(backupsDir);
    expect(files).toEqual([body.backup.name]);
    expect(body.backup.name).toMatch(/^mc-backup-\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}(-\d+)?\.db$/);
    const backupPath = path.join(backupsDir, body.backup.name);
    expect(fs.statSync(backupPath).size).toBe(body.backup.size);
    const copy = new Database(backupPath, { readonly: true, fileMustExist: true });
    try {
      expect(copy.pragma('integrity_check', { simple: true })).toBe('ok');
      expect(fillerSummary(copy)).toEqual(before);
    } finally {
      copy.close();
    }

    // The live database was closed cleanly: WAL checkpointed and removed, integrity ok, rows intact.
    expect(fs.readdirSync(dir).sort()).toEqual(['backups', 'mission-control.db']);
    const live = new Database(dbPath, { readonly: true, fileMustExist: true });
    try {
      expect(live.pragma('integrity_check', { simple: true })).toBe('ok');
      expect(fillerSummary(live)).toEqual(before);
      const created = live
        .prepare("SELECT count(*) FROM audit_log WHERE action = 'backup_create'")
        .pluck()
        .get() as number;
      expect(created).toBe(1);
    } finally {
      live.close();
    }

    process.stdout.write(
      `shutdown e2e: start-up ${listenedAt - started} ms, SIGTERM→exit ${exitedAt - signalledAt} ms, ` +
        `total ${Date.now() - started} ms\n`,
    );
  }, 60_000);

  it('should stop `npm start` on SIGTERM to npm: the port closes and npm exits 0 within the shutdown window', async () => {
    const dbPath = path.join(dir, 'mission-control.db');
    let output = '';
    // Exactly the operator's command. It builds dist/ first only when dist/ is missing or stale (scripts/built.js).
    const npm = spawn('npm', ['start'], {
      cwd: ROOT,
      // Its own process group, for the clean-up only: the signal below goes to npm's pid alone.
      detached: true,
      env: {
        ...process.env,
        PORT: '0',
        HOST: '127.0.0.1',
        MISSION_CONTROL_DB_PATH: dbPath,
        AUTH_USER: 'admin',
        AUTH_PASS: 'admin-password-123',
        LOG_LEVEL: 'info',
        SHUTDOWN_TIMEOUT_MS: '5000',
        NODE_ENV: 'production',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = npm;
    npm.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    npm.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      npm.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const port = await waitFor('npm start to listen', 150_000, () => {
      if (npm.exitCode !== null) {
        throw new Error(`npm start exited early with ${npm.exitCode}:\n${output}`);
      }
      const match = LISTENING.exec(output);
      return match ? Number(match[1]) : undefined;
    });
    expect((await send(port, 'GET', '/api/health')).status).toBe(200);

    // The start-up log is a few lines an operator reads, not Nest's route map (that is at debug).
    const infoLines = output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { level: number; msg: string })
      .filter((line) => line.level >= 30);
    expect(infoLines.length).toBeLessThanOrEqual(8);
    expect(output).not.toContain('Mapped {');
    expect(output).not.toContain('/api/metrics');
    const startup = infoLines.map((line) => line.msg).join('\n');
    expect(startup).toContain(`metrics http://127.0.0.1:${port}/metrics`);
    expect(startup).toContain(`Database ${dbPath}; backups folder ${path.join(dir, 'backups')}`);
    expect(startup).toMatch(/Automatic backup off \(general\.auto_backup\), schedule "0 3 \* \* \*" UTC/);

    const signalledAt = Date.now();
    expect(npm.kill('SIGTERM')).toBe(true);
    const { code, signal } = await exited;
    const stoppedMs = Date.now() - signalledAt;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(stoppedMs).toBeLessThan(5_000 + 10_000);
    expect(output).toContain('Shut down cleanly');
    // Nothing listens any more: node itself stopped, not only npm.
    await expect(send(port, 'GET', '/api/health')).rejects.toThrow(/ECONNREFUSED/);
  }, 180_000);
});
