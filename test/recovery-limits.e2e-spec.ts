import { createHash } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { folderEntries, growDatabase, inBackups, makeBackup, sha256File } from './helpers/recovery-fixtures';
import { API_KEY, startTestApp, type TestApp } from './helpers/test-app';

const MIB = 1024 * 1024;

describe('Recovery: upload cap (e2e)', () => {
  let t: TestApp;
  let server: http.Server;
  let port: number;

  beforeEach(async () => {
    t = await startTestApp({ MAX_UPLOAD_BYTES: '65536' });
    server = t.app.getHttpServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterEach(async () => {
    await t?.close();
  });

  /** Streams `total` bytes in `chunk`-byte pieces without a Content-Length (chunked), like a client that lies. */
  function streamUpload(total: number, chunk = 16 * 1024): Promise<{ status: number | null; body: string }> {
    return new Promise((resolve) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/api/backup/upload',
          headers: { 'x-api-key': API_KEY, 'Content-Type': 'application/octet-stream' },
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? null, body }));
          res.on('error', () => resolve({ status: res.statusCode ?? null, body }));
        },
      );
      req.on('error', () => resolve({ status: null, body: '' }));
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          sent += chunk;
          if (!req.write(Buffer.alloc(chunk, 0x41))) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });
  }

  it('should refuse a Content-Length over MAX_UPLOAD_BYTES with 413 before reading, keeping nothing', async () => {
    const entries = folderEntries(t);
    const response = await request(t.http)
      .post('/api/backup/upload')
      .set('x-api-key', API_KEY)
      .set('Content-Type', 'application/octet-stream')
      .send(Buffer.alloc(65537, 1))
      .expect(413);
    expect(response.body).toMatchObject({ error: expect.any(String) });
    expect(folderEntries(t)).toEqual(entries);
  });

  it('should stop a streamed body once it passes the cap, answer 413 and keep nothing', async () => {
    const entries = folderEntries(t);
    const result = await streamUpload(4 * MIB);
    expect(result.status).toBe(413);
    expect(JSON.parse(result.body)).toMatchObject({ error: expect.any(String) });
    // The refusal is audited once the upload's temp file is gone: wait for that row, not for a fixed time.
    let failed: Array<{ detail: unknown }> = [];
    for (const end = Date.now() + 20_000; failed.length === 0 && Date.now() < end;) {
      const response = await request(t.http).get('/api/audit?action=backup_upload_failed').set('x-api-key', API_KEY);
      failed = (response.body as { events: Array<{ detail: unknown }> }).events;
    }
    expect(failed[0]).toMatchObject({ detail: { reason: 'too_large' } });
    expect(folderEntries(t)).toEqual(entries);
  });
});

describe('Recovery: a 200 MB backup (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp();
  }, 120_000);

  afterAll(async () => {
    await t?.close();
  });

  // Memory is not asserted here: a whole-process RSS limit (without an exposed gc) flakes on a busy machine.
  it('should download it streamed, bytes and checksum equal', async () => {
    growDatabase(t.dbPath, 200 * MIB);
    const made = await makeBackup(t);
    expect(made.size).toBeGreaterThan(190 * MIB);
    const server: http.Server = t.app.getHttpServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const { headers, bytes, sha256 } = await new Promise<{
      headers: http.IncomingHttpHeaders;
      bytes: number;
      sha256: string;
    }>((resolve, reject) => {
      const hash = createHash('sha256');
      http
        .get(
          {
            host: '127.0.0.1',
            port,
            path: `/api/backup/download?name=${made.name}`,
            headers: { 'x-api-key': API_KEY },
          },
          (res) => {
            let count = 0;
            res.on('data', (chunk: Buffer) => {
              count += chunk.length;
              hash.update(chunk);
            });
            res.on('end', () => resolve({ headers: res.headers, bytes: count, sha256: hash.digest('hex') }));
            res.on('error', reject);
          },
        )
        .on('error', reject);
    });
    const fileHash = sha256File(inBackups(t, made.name));
    expect(bytes).toBe(made.size);
    expect(sha256).toBe(fileHash);
    expect(headers['x-checksum-sha256']).toBe(fileHash);
    expect(Number(headers['content-length'])).toBe(made.size);
    server.close();
  }, 120_000);
});
