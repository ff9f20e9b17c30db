import * as fs from 'node:fs';
import request from 'supertest';
import { API_KEY } from './helpers/test-app';
import { startObservabilityApp, type ObservabilityApp } from './helpers/observability-app';

/**
 * A failing backup or upload tells the client why in a stable `reason` and a safe message, and the log carries the
 * detail under the request id: never `ApiError: Api Error` and a stack trace. The failures are real (a backups
 * "folder" that is a file), not mocked.
 */
describe('Failure reasons (e2e)', () => {
  let o: ObservabilityApp;

  beforeEach(async () => {
    o = await startObservabilityApp();
    fs.rmSync(o.backupsDir, { recursive: true });
    fs.writeFileSync(o.backupsDir, 'not a folder');
  });

  afterEach(async () => {
    await o.close();
  });

  function linesOf(requestId: string): Array<Record<string, unknown>> {
    return o.logs.lines().filter((line) => line.reqId === requestId);
  }

  it('should answer a failed backup with reason and message, and log the cause once under the request id', async () => {
    const response = await request(o.http).post('/api/backup').set('x-api-key', API_KEY).expect(500);
    expect(response.body).toEqual({
      error: 'Backup failed',
      reason: 'io',
      message: 'a file could not be read or written (I/O error or permissions)',
    });
    expect(response.text).not.toContain(o.dir);

    const requestId = String(response.headers['x-request-id']);
    const messages = linesOf(requestId).map((line) => String(line.msg));
    expect(messages).toEqual(expect.arrayContaining([expect.stringMatching(/^Backup failed \(io\): \w+/)]));
    expect(o.logs.text()).not.toContain('ApiError');
    expect(o.logs.text()).not.toMatch(/\n\s+at /);
  });

  it('should answer a failed upload with reason and message', async () => {
    const response = await request(o.http)
      .post('/api/backup/upload')
      .set('x-api-key', API_KEY)
      .set('Content-Type', 'application/octet-stream')
      .send(Buffer.from('SQLite format 3\0'))
      .expect(500);
    expect(response.body).toEqual({ error: 'Upload failed', reason: 'io', message: expect.any(String) });
    const requestId = String(response.headers['x-request-id']);
    expect(linesOf(requestId).map((line) => String(line.msg))).toEqual(
      expect.arrayContaining([expect.stringMatching(/^Upload failed \(io\): /)]),
    );
    expect(o.logs.text()).not.toContain('ApiError');
  });
});
