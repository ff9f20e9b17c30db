import type { NestExpressApplication } from '@nestjs/platform-express';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import request from 'supertest';
import type { App } from 'supertest/types';
import { DataSource } from 'typeorm';
import { createApp } from '../../src/app.setup';
import { loadConfig } from '../../src/config/app-config';
import type { ObservabilityOptions } from '../../src/observability/observability-options';
import { ADMIN, API_KEY } from './test-app';
import { testLogStream } from './test-logs';

/** Every line pino writes, kept in memory: the tests grep it and nothing reaches the terminal. */
export class LogCapture {
  private readonly chunks: string[] = [];

  write(chunk: string): void {
    this.chunks.push(chunk);
    // Also with the running test's logs, printed only if it fails (test/jest-environment.js).
    testLogStream.write(chunk);
  }

  text(): string {
    return this.chunks.join('');
  }

  lines(): Array<Record<string, unknown>> {
    return this.text()
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }
}

export interface ObservabilityApp {
  app: NestExpressApplication;
  http: App;
  dir: string;
  backupsDir: string;
  dataSource: DataSource;
  logs: LogCapture;
  close(): Promise<void>;
}

/**
 * The real app through createApp, like test/helpers/test-app.ts, but with its logs captured (never printed)
 * and the Nest logger left on pino. nestjs-pino keeps ONE out-of-request logger per process (module
 * registry), taken from the first app created: logs outside a request (cron, start-up) of later apps in the
 * same test file land in the first app's capture. Request logs always go to their own app's capture.
 */
export async function startObservabilityApp(
  env: Record<string, string> = {},
  options: Omit<ObservabilityOptions, 'logStream'> = {},
  existingDir?: string,
): Promise<ObservabilityApp> {
  const dir = existingDir ?? mkdtempSync(path.join(tmpdir(), 'mc-obs-'));
  const config = loadConfig({
    MISSION_CONTROL_DB_PATH: path.join(dir, 'mission-control.db'),
    AUTH_USER: ADMIN.username,
    AUTH_PASS: ADMIN.password,
    API_KEY,
    LOG_LEVEL: 'info',
    ...env,
  });
  const logs = new LogCapture();
  const app = await createApp(config, { ...options, logStream: logs });
  await app.init();
  return {
    app,
    http: app.getHttpServer() as App,
    dir,
    backupsDir: config.backupsDir,
    dataSource: app.get(DataSource),
    logs,
    async close() {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function setSetting(http: App, key: string, value: unknown): Promise<void> {
  await request(http)
    .put('/api/settings')
    .set('x-api-key', API_KEY)
    .send({ settings: { [key]: value } })
    .expect(200);
}

export async function auditEvents(
  http: App,
  action: string,
): Promise<Array<{ actor: string; detail: Record<string, unknown> }>> {
  const response = await request(http).get(`/api/audit?action=${action}`).set('x-api-key', API_KEY).expect(200);
  return response.body.events;
}

export async function waitFor<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error('condition not met in time');
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A webhook receiver on 127.0.0.1 whose answer to each POST the test decides. */
export interface Receiver {
  url: string;
  received: Array<{ body: unknown; headers: IncomingMessage['headers'] }>;
  close(): Promise<void>;
}

/** `respond(n)` is called for the n-th request (1-based): a status code, or 'hang' to never answer. */
export async function startReceiver(respond: (attempt: number) => number | 'hang'): Promise<Receiver> {
  const received: Receiver['received'] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ body: JSON.parse(Buffer.concat(chunks).toString('utf8')), headers: req.headers });
      const answer = respond(received.length);
      if (answer !== 'hang') {
        res.writeHead(answer, { 'Content-Type': 'application/json' }).end('{}');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook?token=receiver-secret`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Makes every later backup fail: the backups folder becomes a regular file (as test/backups.e2e-spec.ts does). */
export function breakBackupsFolder(backupsDir: string): void {
  rmSync(backupsDir, { recursive: true, force: true });
  writeFileSync(backupsDir, 'not a folder');
}
