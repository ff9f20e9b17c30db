/**
 * Health under a full backups folder (issue 10, finding 5): 10,000 anonymous GET /api/health with 1,000 backup files,
 * against the production build (dist/, `nest build` first), with a concurrent GET /api/auth/me probe. Prints time,
 * latency and memory. Run: `npx nest build && npx ts-node --transpile-only bench/health.bench.ts [calls] [files]`.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

const CALLS = Number(process.argv[2] ?? 10_000);
const FILES = Number(process.argv[3] ?? 1_000);
const CONCURRENCY = 10;
const API_KEY = 'bench-api-key-0123456789abcdef';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { createApp } = require(path.join(__dirname, '..', 'dist', 'app.setup')) as typeof import('../src/app.setup');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { loadConfig } = require(
  path.join(__dirname, '..', 'dist', 'config', 'app-config'),
) as typeof import('../src/config/app-config');

const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY + 1 });

function get(port: number, url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: url, agent, headers }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(tmpdir(), 'mc-health-bench-'));
  const config = loadConfig({
    MISSION_CONTROL_DB_PATH: path.join(dir, 'mission-control.db'),
    AUTH_USER: 'admin',
    AUTH_PASS: 'admin-password-123',
    API_KEY,
    LOG_LEVEL: 'error',
  });
  const app = await createApp(config);
  await app.listen(0, '127.0.0.1');
  const port = (app.getHttpServer().address() as AddressInfo).port;
  try {
    const made = await new Promise<{ backup: { name: string } }>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port, path: '/api/backup', method: 'POST', headers: { 'x-api-key': API_KEY } },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve(JSON.parse(body) as { backup: { name: string } }));
        },
      );
      req.on('error', reject);
      req.end();
    });
    const source = path.join(config.backupsDir, made.backup.name);
    for (let i = 0; i < FILES; i++) {
      const stamp = `2025-01-${String(1 + Math.floor(i / 1440)).padStart(2, '0')}_${String(Math.floor(i / 60) % 24).padStart(2, '0')}-${String(i % 60).padStart(2, '0')}-00`;
      fs.linkSync(source, path.join(config.backupsDir, `mc-backup-${stamp}.db`));
    }
    for (let i = 0; i < 200; i++) {
      await get(port, '/api/health');
    }
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    const heapBefore = process.memoryUsage().heapUsed;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 50);
    const latencies: number[] = [];
    const meLatencies: number[] = [];
    let next = 0;
    let bad = 0;
    let done = false;
    const meProbe = (async () => {
      while (!done) {
        const started = performance.now();
        await get(port, '/api/auth/me', { 'x-api-key': API_KEY });
        meLatencies.push(performance.now() - started);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < CALLS) {
          next += 1;
          const t0 = performance.now();
          if ((await get(port, '/api/health')) !== 200) {
            bad += 1;
          }
          latencies.push(performance.now() - t0);
        }
      }),
    );
    const totalMs = performance.now() - started;
    done = true;
    await meProbe;
    clearInterval(sampler);
    global.gc?.();
    const rssAfterGc = process.memoryUsage().rss;
    const heapAfterGc = process.memoryUsage().heapUsed;
    latencies.sort((a, b) => a - b);
    meLatencies.sort((a, b) => a - b);
    const mib = (n: number): string => (n / 1024 / 1024).toFixed(1);
    console.log(`${CALLS} GET /api/health (anonymous, ${CONCURRENCY} at a time) with ${FILES + 1} backup files`);
    console.log(`  total ${(totalMs / 1000).toFixed(2)} s; non-200: ${bad}`);
    console.log(
      `  latency ms: median ${percentile(latencies, 0.5).toFixed(2)}, p99 ${percentile(latencies, 0.99).toFixed(2)}, max ${latencies[latencies.length - 1].toFixed(2)}`,
    );
    console.log(
      `  concurrent GET /api/auth/me ms: median ${percentile(meLatencies, 0.5).toFixed(2)}, max ${meLatencies[meLatencies.length - 1].toFixed(2)} (${meLatencies.length} calls)`,
    );
    console.log(`  RSS MiB: before ${mib(rssBefore)}, peak ${mib(rssPeak)}, after (gc) ${mib(rssAfterGc)}`);
    console.log(`  JS heap used MiB: before ${mib(heapBefore)}, after (gc) ${mib(heapAfterGc)}`);
  } finally {
    await app.close();
    agent.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main();
