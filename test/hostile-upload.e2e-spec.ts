import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { auditEvents, folderEntries, inBackups, makeBackup } from './helpers/recovery-fixtures';
import { freshRateLimits } from './helpers/rate-limit';
import { API_KEY, type TestApp } from './helpers/test-app';
import { startObservabilityApp, type ObservabilityApp } from './helpers/observability-app';

const CAP = 1024 * 1024;
const BODY = 4 * CAP;
const IDLE_MS = 1000;

interface Outcome {
  status: number | null;
  body: string;
  error?: string;
}

/** Issue 10, findings 10 (the 413 must reach the client) and 7 (an idle timeout, not a total one, on uploads). */
describe('Hostile uploads: oversize bodies and slow clients (e2e)', () => {
  let o: ObservabilityApp;
  let t: TestApp;
  let port: number;

  beforeAll(async () => {
    o = await startObservabilityApp(
      { MAX_UPLOAD_BYTES: String(CAP) },
      { httpBody: { bodyIdleTimeoutMs: IDLE_MS, discardMaxMs: 5000 } },
    );
    t = o as unknown as TestApp;
    const server = o.app.getHttpServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await o?.close();
  });

  const url = () => `http://127.0.0.1:${port}/api/backup/upload`;

  /** The backups rate limit (10 a minute) is not under test here: start every request with a fresh budget. */
  function freshBudget(): void {
    freshRateLimits(o.app);
  }

  function curl(file: string, chunked: boolean): Promise<Outcome & { exit: number }> {
    const args = ['-s', '-o', '-', '-w', '\n%{http_code}', '-X', 'POST', '-H', `x-api-key: ${API_KEY}`];
    args.push('-H', 'Content-Type: application/octet-stream', '--data-binary', `@${file}`);
    if (chunked) {
      args.push('-H', 'Transfer-Encoding: chunked');
    }
    freshBudget();
    return new Promise((resolve) => {
      execFile('curl', [...args, url()], { encoding: 'utf8' }, (error, stdout) => {
        const lines = stdout.split('\n');
        const code = Number(lines.pop());
        resolve({
          status: code || null,
          body: lines.join('\n'),
          exit: error ? Number((error as { code?: unknown }).code) : 0,
        });
      });
    });
  }

  /** Node's http client: writes the whole body as fast as it can, with a Content-Length or chunked. */
  function nodeUpload(chunked: boolean): Promise<Outcome> {
    freshBudget();
    return new Promise((resolve) => {
      const headers: Record<string, string> = { 'x-api-key': API_KEY, 'Content-Type': 'application/octet-stream' };
      if (!chunked) {
        headers['Content-Length'] = String(BODY);
      }
      const req = http.request(
        { host: '127.0.0.1', port, method: 'POST', path: '/api/backup/upload', headers },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? null, body }));
          res.on('error', () => resolve({ status: res.statusCode ?? null, body }));
        },
      );
      req.on('error', (error) => resolve({ status: null, body: '', error: error.message }));
      const chunk = Buffer.alloc(64 * 1024, 0x41);
      let sent = 0;
      const pump = (): void => {
        while (sent < BODY) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });
  }

  describe('413 over MAX_UPLOAD_BYTES', () => {
    let file: string;

    beforeAll(() => {
      file = `${o.dir}/big.bin`;
      fs.writeFileSync(file, Buffer.alloc(BODY, 0x42));
    });

    it.each([
      ['curl, Content-Length (Expect: 100-continue)', false],
      ['curl, chunked', true],
    ])('should reach %s, 10 times out of 10, keeping nothing', async (_label, chunked) => {
      const before = folderEntries(t);
      for (let i = 0; i < 10; i++) {
        const result = await curl(file, chunked);
        expect([i, result.status]).toEqual([i, 413]);
        expect(JSON.parse(result.body)).toMatchObject({ error: 'Upload exceeds MAX_UPLOAD_BYTES', max_bytes: CAP });
      }
      expect(folderEntries(t)).toEqual(before);
    });

    it.each([
      ['Node http, Content-Length', false],
      ['Node http, chunked', true],
    ])('should reach %s, 10 times out of 10', async (_label, chunked) => {
      for (let i = 0; i < 10; i++) {
        const result = await nodeUpload(chunked);
        expect([i, result.status, result.error]).toEqual([i, 413, undefined]);
        expect(JSON.parse(result.body)).toMatchObject({ error: 'Upload exceeds MAX_UPLOAD_BYTES' });
      }
    });

    it('should answer an unauthenticated oversize upload with 401 before the body is sent', async () => {
      const result = await new Promise<Outcome>((resolve) => {
        execFile(
          'curl',
          [
            '-s',
            '-o',
            '/dev/null',
            '-w',
            '%{http_code}',
            '-H',
            'Content-Type: application/octet-stream',
            '--data-binary',
            `@${file}`,
            url(),
          ],
          { encoding: 'utf8' },
          (_error, stdout) => resolve({ status: Number(stdout), body: '' }),
        );
      });
      expect(result.status).toBe(401);
    });
  });

  describe('idle timeout instead of a total one', () => {
    /** Sends `bytes` as `pieces` writes `gapMs` apart (Content-Length declared), then waits for the answer. */
    function slowUpload(bytes: Buffer, pieces: number, gapMs: number, stallAfter?: number): Promise<Outcome> {
      freshBudget();
      return new Promise((resolve) => {
        const req = http.request(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: '/api/backup/upload',
            headers: {
              'x-api-key': API_KEY,
              'Content-Type': 'application/octet-stream',
              'Content-Length': String(bytes.length),
            },
          },
          (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (body += d));
            res.on('end', () => resolve({ status: res.statusCode ?? null, body }));
          },
        );
        req.on('error', (error) => resolve({ status: null, body: '', error: error.message }));
        const size = Math.ceil(bytes.length / pieces);
        let i = 0;
        const next = (): void => {
          if (stallAfter !== undefined && i === stallAfter) {
            return; // never another byte
          }
          req.write(bytes.subarray(i * size, (i + 1) * size));
          i += 1;
          if (i * size >= bytes.length) {
            req.end();
          } else {
            setTimeout(next, gapMs);
          }
        };
        next();
      });
    }

    it('should take an upload that trickles in for longer than the idle timeout, as long as bytes keep coming', async () => {
      const made = await makeBackup(t);
      const bytes = fs.readFileSync(inBackups(t, made.name));
      // 8 pieces, 400 ms apart: about 3 s in all, three times the idle timeout, never 1 s without a byte.
      const result = await slowUpload(bytes, 8, 400);
      expect(result.status).toBe(201);
    });

    it('should close an upload that stops sending for the idle timeout, keeping nothing', async () => {
      const made = await makeBackup(t);
      const bytes = fs.readFileSync(inBackups(t, made.name));
      const before = folderEntries(t).filter((n) => !n.startsWith('.'));
      const result = await slowUpload(bytes, 4, 50, 2);
      expect(result.status).toBeNull();
      expect(result.error).toMatch(/socket hang up|ECONNRESET/);
      // The failure is recorded once the service has cleaned up.
      for (
        let i = 0;
        i < 100 && (await auditEvents(t, 'backup_upload_failed')).every((e) => e.detail.reason !== 'interrupted');
        i++
      ) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect((await auditEvents(t, 'backup_upload_failed')).map((e) => e.detail.reason)).toContain('interrupted');
      expect(folderEntries(t).filter((n) => !n.startsWith('.'))).toEqual(before);
      expect(folderEntries(t).filter((n) => n.startsWith('.mc-tmp-'))).toEqual([]);
      await request(o.http).get('/api/health').expect(200);
    });
  });
});
