import { type ChildProcess, spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';

/**
 * Graceful shutdown, for real: a child process started like src/main.ts on a database large enough that a backup
 * takes a while, SIGTERM in the middle of `POST /api/backup`, and then everything the operator relies on.
 */

const API_KEY = 'shutdown-test-key-0123456789';
const ROOT = path.resolve(__dirname, '..');
const ENTRY = path.join(__dirname, 'helpers', 'shutdown-entry.ts');
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
    dir = fs.mkdtempSync(path.join(tmpdir(), 'mc-shutdown-'));
  });

  afterEach(() => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
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
    const proc = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', ENTRY], {
      cwd: ROOT,
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
      const match = /LISTENING (\d+)/.exec(output);
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
});
