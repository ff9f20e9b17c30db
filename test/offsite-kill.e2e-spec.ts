import Database from 'better-sqlite3';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import request from 'supertest';
import { AgeCrypto } from '../src/offsite/age-crypto';
import { startObservabilityApp, type ObservabilityApp } from './helpers/observability-app';
import {
  FaultProxy,
  makeAgeKeys,
  offsiteEnv,
  S3_SECRET_KEY,
  startCompiledService,
  startS3,
  useTestCredentials,
  waitFor,
  type S3Server,
} from './helpers/s3-fixtures';
import { API_KEY } from './helpers/test-app';

/** The compiled service, as production runs it (dist/, built once per test run by test/global-setup.js). */
/** 40 MiB of incompressible rows: the upload takes five 8 MiB parts (a multipart upload). */
const FILLER_ROWS = 640;
const FILLER_BYTES = 64 * 1024;

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

describe('Off-site upload killed mid-way (e2e, child process + SIGKILL)', () => {
  let s3: S3Server;
  let proxy: FaultProxy;
  let dir: string;
  let child: ChildProcess | undefined;
  let app: ObservabilityApp | undefined;

  beforeAll(() => useTestCredentials());

  beforeEach(async () => {
    s3 = await startS3();
    proxy = new FaultProxy(s3.endpoint);
    await proxy.start();
    dir = fs.mkdtempSync(path.join(tmpdir(), 'mc-offsite-kill-'));
  });

  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
    }
    await app?.app.close();
    await proxy.close();
    await s3.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('should upload the backup exactly once after a restart, with no partial object ever listed', async () => {
    const keys = await makeAgeKeys(dir);
    const dbPath = path.join(dir, 'mission-control.db');
    const db = new Database(dbPath);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE filler(id INTEGER PRIMARY KEY, payload BLOB NOT NULL)');
    const insert = db.prepare('INSERT INTO filler(id, payload) VALUES (?, ?)');
    const payload = Buffer.alloc(FILLER_BYTES);
    db.transaction(() => {
      for (let id = 1; id <= FILLER_ROWS; id++) {
        randomFillSync(payload);
        insert.run(id, payload);
      }
    }).immediate();
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();

    const env = offsiteEnv(proxy.endpoint, {
      BACKUP_ENCRYPTION_RECIPIENTS: keys.recipient,
      BACKUP_ENCRYPTION_IDENTITY_FILE: keys.identityFile,
      // Nothing here stalls on purpose, so the specs' 3 s stall timeout only risks a false one: in a full run at
      // load 12 the re-upload's 8 MiB part (encrypted, proxied and stored in this one busy process) went 3 s without
      // progress, failed ETIMEDOUT, and its retry came after the 60 s wait for the upload.
      OFFSITE_REQUEST_TIMEOUT_MS: '30000',
    });
    const service = await startCompiledService(dbPath, API_KEY, env, 'debug');
    const { proc, port, exited } = service;
    child = proc;

    // SIGKILL once a part of the multipart upload is half-way through the proxy.
    let killed = false;
    proxy.onUploadBytes = (total) => {
      if (!killed && total > 4 * 1024 * 1024) {
        killed = true;
        proc.kill('SIGKILL');
      }
    };
    const response = await fetch(`http://127.0.0.1:${port}/api/backup`, {
      method: 'POST',
      headers: { 'x-api-key': API_KEY },
    });
    expect(response.status).toBe(200);
    const name = ((await response.json()) as { backup: { name: string } }).backup.name;
    expect(await exited).toBe('SIGKILL');
    proxy.onUploadBytes = null;
    expect(proxy.count((r) => r.method === 'POST' && r.url.includes('uploads'))).toBeGreaterThanOrEqual(1);
    // Nothing is listed for it: S3 shows a multipart upload only once completed. The upload is left open.
    expect(s3.objects()).toEqual([]);
    const [leftOpen] = [...proxy.openUploads.keys()];
    expect(leftOpen).toEqual(expect.any(String));
    expect(service.output()).not.toContain('NodeVersionSupportWarning');
    expect(service.output()).not.toContain(S3_SECRET_KEY);
    expect(service.output()).not.toContain('AGE-SECRET-KEY');

    // Restart (in-process): the queue resumes and the backup goes up once.
    app = await startObservabilityApp({ ...env, AUTH_USER: 'admin', AUTH_PASS: 'admin-password-123' }, {}, dir);
    const t = app;
    await waitFor(
      async () => {
        const listed = (await request(t.http).get('/api/backup').set('x-api-key', API_KEY)).body.backups as {
          name: string;
          offsite: { status: string };
        }[];
        return listed.find((b) => b.name === name)?.offsite.status === 'uploaded';
      },
      60_000,
      'the upload after the restart',
    );
    expect(s3.objects()).toEqual([`${name}.age`, `${name}.json`]);
    // The interrupted multipart upload was aborted at start-up (its parts are not billed forever).
    expect(proxy.count((r) => r.method === 'DELETE' && r.url.includes(`uploadId=${leftOpen}`))).toBe(1);
    expect(proxy.openUploads.size).toBe(0);
    const remote = await request(t.http).get('/api/backup/remote').set('x-api-key', API_KEY).expect(200);
    expect(remote.body.backups.map((b: { name: string }) => b.name)).toEqual([name]);
    const uploads = (await request(t.http).get('/api/audit?action=offsite_upload').set('x-api-key', API_KEY)).body
      .events as unknown[];
    expect(uploads).toHaveLength(1);
    const local = path.join(t.backupsDir, name);
    const plain = await new AgeCrypto([], keys.identityFile).decrypt(fs.createReadStream(s3.objectPath(`${name}.age`)));
    const hash = createHash('sha256');
    for await (const chunk of plain) {
      hash.update(chunk as Buffer);
    }
    expect(hash.digest('hex')).toBe(sha256(local));
  });
});
