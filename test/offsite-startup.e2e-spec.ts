import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { offsiteEnv, useTestCredentials, waitFor } from './helpers/s3-fixtures';
import { startTestApp } from './helpers/test-app';

/**
 * A service stopped while its off-site worker is still starting (a bucket that answers late, a stop right after a
 * start): the worker's start-up must notice the stop and never touch the outbox after the database has closed.
 * Before, the late answer let the start-up go on into a closed database and reject with nobody listening, which
 * ends the process.
 */
describe('Off-site worker stopped during its start-up', () => {
  beforeAll(() => useTestCredentials());

  it('should stop cleanly when the bucket answers only after the application has closed', async () => {
    const held: http.ServerResponse[] = [];
    const bucket = http.createServer((req, res) => {
      req.resume();
      held.push(res);
    });
    await new Promise<void>((resolve) => bucket.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(bucket.address() as AddressInfo).port}`;
    const logs = globalThis as { __mcTestLogs?: string[] };
    try {
      const t = await startTestApp(
        offsiteEnv(endpoint, { OFFSITE_REQUEST_TIMEOUT_MS: '60000', OFFSITE_ALLOW_PLAINTEXT: 'true' }),
      );
      // The worker's first request (ListMultipartUploads) is held: its start-up waits on it.
      await waitFor(() => held.length > 0, 10_000, 'the worker to ask the bucket');
      const answer = (): void => {
        for (const res of held.splice(0)) {
          if (!res.destroyed) {
            res.writeHead(200, { 'Content-Type': 'application/xml' });
            res.end('<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult></ListMultipartUploadsResult>');
          }
        }
      };
      // The bucket answers late: once the application has closed, or after a while should closing wait for it.
      const late = setTimeout(answer, 500);
      await t.close();
      clearTimeout(late);
      answer();
      // Closing waits for the start-up in flight; before, it went on after the close and failed within milliseconds.
      // Closing waits for the start-up in flight. Before, it went on after the close (the SDK retries a request
      // whose socket the close destroyed), then failed on the closed database: answer whatever still comes.
      const answering = setInterval(answer, 50);
      await new Promise((resolve) => setTimeout(resolve, 3000));
      clearInterval(answering);
      const lines = (logs.__mcTestLogs ?? []).join('');
      expect(lines).not.toMatch(/failed to start|not open/);
    } finally {
      bucket.closeAllConnections();
      await new Promise<void>((resolve) => bucket.close(() => resolve()));
    }
  });
});
