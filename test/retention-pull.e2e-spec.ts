import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import request from 'supertest';
import { auditEvents, exists, sha256 } from './helpers/backup-fixtures';
import { makeAgeKeys, offsiteEnv, startS3, useTestCredentials, waitFor, type S3Server } from './helpers/s3-fixtures';
import { API_KEY, startTestApp, type TestApp } from './helpers/test-app';

interface Listed {
  name: string;
  offsite: { status: string };
}

describe('Local retention and copies pulled from the bucket (e2e, s3rver)', () => {
  let s3: S3Server;
  let t: TestApp;
  let keyDir: string;

  beforeAll(() => useTestCredentials());

  beforeEach(async () => {
    s3 = await startS3();
    keyDir = fs.mkdtempSync(path.join(tmpdir(), 'mc-keys-'));
    const keys = await makeAgeKeys(keyDir);
    t = await startTestApp(
      offsiteEnv(s3.endpoint, {
        BACKUP_ENCRYPTION_RECIPIENTS: keys.recipient,
        BACKUP_ENCRYPTION_IDENTITY_FILE: keys.identityFile,
      }),
    );
  });

  afterEach(async () => {
    // The age secret key goes first: a failing close below must not leave it in the temp folder.
    fs.rmSync(keyDir, { recursive: true, force: true });
    await t?.close();
    await s3?.close();
  });

  const api = (method: 'get' | 'post' | 'put' | 'delete', url: string) =>
    request(t.http)[method](url).set('x-api-key', API_KEY);

  async function backup(): Promise<string> {
    return ((await api('post', '/api/backup').expect(200)).body as { backup: { name: string } }).backup.name;
  }

  async function uploaded(name: string): Promise<void> {
    await waitFor(
      async () =>
        ((await api('get', '/api/backup').expect(200)).body as { backups: Listed[] }).backups.find(
          (b) => b.name === name && b.offsite.status === 'uploaded',
        ),
      30_000,
      `${name} to be uploaded`,
    );
  }

  it('should keep a pulled copy through the next backups’ count retention', async () => {
    const name = await backup();
    await uploaded(name);
    await api('delete', '/api/backup').send({ name }).expect(200);
    await api('put', '/api/settings')
      .send({ settings: { 'general.backup_retention_count': 1 } })
      .expect(200);

    await api('post', '/api/backup/remote/pull').send({ name }).expect(201);
    const pulledHash = sha256(path.join(t.backupsDir, name));

    // Each new backup is uploaded before the next, so none is held back by its pending upload.
    const made: string[] = [];
    for (let i = 0; i < 2; i++) {
      made.push(await backup());
      await uploaded(made[i]);
    }

    expect(exists(path.join(t.backupsDir, name))).toBe(true);
    expect(sha256(path.join(t.backupsDir, name))).toBe(pulledHash);
    const pruned = (await auditEvents(t, 'backup_prune')).map((e) => e.detail.name);
    expect(pruned).not.toContain(name);
    expect(pruned).toEqual([made[0]]);
  });
});
