import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import request from 'supertest';
import { BackupFiles } from '../src/backups/backup-files';
import { inBackups, makeBackup } from './helpers/recovery-fixtures';
import { ADMIN, API_KEY, startTestApp, type TestApp, withApiKey } from './helpers/test-app';

/** Issue 10, findings 4 (a FIFO under a backup's name) and 8 (a file deleted while a route works on it). */
describe('Hostile backups folder: FIFOs and races (e2e)', () => {
  let t: TestApp;

  beforeEach(async () => {
    t = await startTestApp();
  });

  afterEach(async () => {
    await t?.close();
  });

  const api = (method: 'get' | 'post' | 'put' | 'delete', url: string) => withApiKey(t.http, method, url);

  /** Replaces a backup's file by a FIFO that nothing ever writes to. */
  function fifoInPlaceOf(name: string): string {
    const file = inBackups(t, name);
    fs.unlinkSync(file);
    execFileSync('mkfifo', ['-m', '600', file]);
    expect(fs.lstatSync(file).isFIFO()).toBe(true);
    return file;
  }

  describe('a FIFO under a backup’s name', () => {
    it('should answer downloads, verify and restore with 404 at once, while health, list and login keep answering', async () => {
      const made = await makeBackup(t); // its manifest has a sha256: download goes straight to the open
      fifoInPlaceOf(made.name);
      // More parallel downloads than libuv has threads (4): a blocking open would starve every file operation.
      const downloads = await Promise.all(
        Array.from({ length: 8 }, () => api('get', `/api/backup/download?name=${made.name}`)),
      );
      expect(downloads.map((r) => r.status)).toEqual(Array(8).fill(404));
      expect(downloads[0].body).toEqual({ error: 'Backup not found' });
      await api('post', '/api/backup/verify').send({ name: made.name }).expect(404);
      await api('post', '/api/backup/restore').send({ name: made.name }).expect(404);

      await request(t.http).get('/api/health').expect(200);
      const list = await api('get', '/api/backup').expect(200);
      expect(list.body.backups.map((b: { name: string }) => b.name)).not.toContain(made.name);
      await request(t.http).post('/api/auth/login').send(ADMIN).expect(200);
      // And the folder still works: a new backup is made and downloaded.
      const next = await makeBackup(t);
      await api('get', `/api/backup/download?name=${next.name}`).expect(200);
    });

    it('should make the inspect worker and the hasher refuse a FIFO without blocking', async () => {
      const made = await makeBackup(t);
      fifoInPlaceOf(made.name);
      const files = t.app.get(BackupFiles);
      await expect(files.inspect(made.name, { integrity: 'full', hash: true })).rejects.toMatchObject({
        name: 'BackupNotFoundError',
      });
      await expect(files.hash(made.name)).rejects.toMatchObject({ name: 'BackupNotFoundError' });
    });
  });

  describe('a backup deleted while a route works on it', () => {
    /** Runs `route` with the file unlinked right after the route's own existence check, as a racing DELETE would. */
    async function racingDelete(
      name: string,
      method: 'inspect' | 'hash',
      route: () => Promise<request.Response>,
    ): Promise<request.Response> {
      const files = t.app.get(BackupFiles);
      const original = files[method].bind(files) as (...args: unknown[]) => Promise<unknown>;
      const spy = jest.spyOn(files, method).mockImplementationOnce((async (...args: unknown[]) => {
        fs.unlinkSync(inBackups(t, name));
        return original(...args);
      }) as never);
      try {
        return await route();
      } finally {
        spy.mockRestore();
      }
    }

    it('should answer 404, not 500, to a verify whose backup is deleted under it', async () => {
      const made = await makeBackup(t);
      const response = await racingDelete(made.name, 'inspect', () =>
        api('post', '/api/backup/verify').send({ name: made.name }),
      );
      expect(response.status).toBe(404);
      expect(response.body).toEqual({ error: 'Backup not found' });
    });

    it('should answer 404, not 500, to a restore whose backup is deleted before its verification', async () => {
      const made = await makeBackup(t);
      const response = await racingDelete(made.name, 'inspect', () =>
        api('post', '/api/backup/restore').send({ name: made.name }),
      );
      expect(response.status).toBe(404);
      expect(fs.readdirSync(t.backupsDir).filter((n) => n.startsWith('mc-safety-'))).toEqual([]);
    });

    it('should answer 404, not 500, to a download that must hash a hand-copied file deleted under it', async () => {
      const made = await makeBackup(t);
      const copy = 'hand-copied.db';
      fs.copyFileSync(inBackups(t, made.name), inBackups(t, copy));
      const response = await racingDelete(copy, 'hash', () => api('get', `/api/backup/download?name=${copy}`));
      expect(response.status).toBe(404);
    });

    it('should answer every verify and delete racing for real with 200 or 404, never 500', async () => {
      // Three rounds of backup + verify + delete: 9 calls, under the shared limit of 10 a minute.
      for (let i = 0; i < 3; i++) {
        const made = await makeBackup(t);
        const [verify, remove] = await Promise.all([
          api('post', '/api/backup/verify').send({ name: made.name }),
          request(t.http).delete('/api/backup').set('x-api-key', API_KEY).send({ name: made.name }),
        ]);
        expect([200, 404]).toContain(verify.status);
        expect(remove.status).toBe(200);
      }
    });
  });
});
