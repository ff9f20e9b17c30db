import Database from 'better-sqlite3';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { compiledBuild } from './helpers/cli-runner';
import {
  type AgeKeys,
  makeAgeKeys,
  offsiteEnv,
  runCliAsync,
  type S3Server,
  startCompiledService,
  startS3,
  useTestCredentials,
  waitFor,
} from './helpers/s3-fixtures';

const API_KEY = 'bare-machine-key-0123456789abcdef';
/** The promise: a commit acknowledged this long before the machine died is in the bucket. */
const PROMISE_MS = 2000;

/**
 * The promise continuous replication makes, end to end and for real: the compiled service streams its WAL to the
 * bucket while a client's writes are acknowledged; the machine dies (SIGKILL, nothing flushed or said goodbye);
 * on a bare folder `backups restore --from-remote --at latest` rebuilds it from the bucket alone, and every write
 * acknowledged two seconds before the kill is there. The live host holds only the recipient, never the identity.
 */
describe('A bare machine after a SIGKILL (e2e: compiled service, s3rver, the CLI)', () => {
  let s3: S3Server;
  let keys: AgeKeys;
  let dir: string;
  let service: ChildProcess | null = null;

  beforeAll(() => useTestCredentials());

  beforeEach(async () => {
    s3 = await startS3();
    dir = fs.mkdtempSync(path.join(tmpdir(), 'mc-bare-kill-'));
    keys = await makeAgeKeys(fs.mkdtempSync(path.join(dir, 'keys-')));
  });

  afterEach(async () => {
    // The age secret key goes first: a failing close below must not leave it in the temp folder.
    fs.rmSync(path.dirname(keys.identityFile), { recursive: true, force: true });
    service?.kill('SIGKILL');
    service = null;
    await s3.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function startService(dbPath: string): Promise<{ port: number; proc: ChildProcess }> {
    // Only the recipient: the live host cannot read its own replica.
    const started = await startCompiledService(
      dbPath,
      API_KEY,
      offsiteEnv(s3.endpoint, { BACKUP_ENCRYPTION_RECIPIENTS: keys.recipient, REPLICATION: 'on' }),
    );
    service = started.proc;
    return started;
  }

  async function api(port: number, method: string, route: string, body?: unknown): Promise<Response> {
    return fetch(`http://127.0.0.1:${port}${route}`, {
      method,
      headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  it('should give back every write acknowledged 2 s before the kill, from the bucket alone', async () => {
    const livePath = path.join(dir, 'live', 'mission-control.db');
    const { port, proc } = await startService(livePath);
    await waitFor(
      async () => {
        const response = await api(port, 'GET', '/api/backup/replication');
        const body = (await response.json()) as { status?: string; generation?: string | null };
        return body.status === 'streaming' && body.generation ? body : undefined;
      },
      60_000,
      'replication to stream',
    );

    // A client writes one user at a time and notes when each was acknowledged; the machine dies mid-stream.
    const acknowledged: Array<{ username: string; at: number }> = [];
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const username = `user-${String(i).padStart(4, '0')}`;
        let response: Response;
        try {
          response = await api(port, 'POST', '/api/auth/users', {
            username,
            password: `${username}-password-123`,
            role: 'viewer',
          });
        } catch {
          return; // the service is gone
        }
        if (response.status === 201) {
          acknowledged.push({ username, at: Date.now() });
        }
      }
    })();
    // Killed once more than 20 writes are past the promise and more keep coming (however fast this machine writes),
    // so the promise is tested on a real number of writes and the kill lands mid-stream.
    await waitFor(
      () => {
        const promisedNow = acknowledged.filter((ack) => ack.at <= Date.now() - PROMISE_MS).length;
        return promisedNow > 20 && acknowledged.length > promisedNow + 5;
      },
      60_000,
      'writes',
    );
    const killedAt = Date.now();
    proc.kill('SIGKILL');
    writing = false;
    await writer;
    await new Promise<void>((resolve) =>
      proc.exitCode !== null || proc.signalCode ? resolve() : proc.once('exit', () => resolve()),
    );
    service = null;

    const barePath = path.join(dir, 'bare', 'mission-control.db');
    const run = await runCliAsync(
      compiledBuild().mainJs,
      barePath,
      ['backups', 'restore', '--from-remote', '--at', 'latest', '--yes'],
      offsiteEnv(s3.endpoint, {
        BACKUP_ENCRYPTION_RECIPIENTS: keys.recipient,
        BACKUP_ENCRYPTION_IDENTITY_FILE: keys.identityFile,
      }),
    );
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });

    const db = new Database(barePath, { readonly: true });
    const restored = new Set(
      (db.prepare("SELECT username FROM users WHERE username LIKE 'user-%'").all() as { username: string }[]).map(
        (row) => row.username,
      ),
    );
    db.close();
    const promised = acknowledged.filter((ack) => ack.at <= killedAt - PROMISE_MS).map((ack) => ack.username);
    expect(promised.length).toBeGreaterThan(20);
    expect(promised.filter((username) => !restored.has(username))).toEqual([]);
    // Nothing is invented: every restored user was asked for.
    const asked = new Set(acknowledged.map((ack) => ack.username));
    const unknown = [...restored].filter((username) => !asked.has(username));
    // At most the one write in flight at the kill may have committed without its acknowledgement arriving.
    expect(unknown.length).toBeLessThanOrEqual(1);

    // The restored machine starts and serves what it got back.
    const bare = await startService(barePath);
    const users = await api(bare.port, 'GET', '/api/auth/users');
    expect(users.status).toBe(200);
    const listed = ((await users.json()) as { users: Array<{ username: string }> }).users.map((u) => u.username);
    expect(listed).toEqual(expect.arrayContaining(promised));
  });
});
