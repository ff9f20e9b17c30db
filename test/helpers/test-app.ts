import type { NestExpressApplication } from '@nestjs/platform-express';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import request from 'supertest';
import type { App } from 'supertest/types';
import { DataSource } from 'typeorm';
import { createApp } from '../../src/app.setup';
import { loadConfig } from '../../src/config/app-config';
import { unwatchLiveDatabase, watchLiveDatabase } from './live-db-tripwire';
import { testLogStream } from './test-logs';

export const ADMIN = { username: 'admin', password: 'admin-password-123' };
export const API_KEY = 'test-api-key-0123456789abcdef';

export interface TestApp {
  app: NestExpressApplication;
  http: App;
  dir: string;
  dbPath: string;
  backupsDir: string;
  dataSource: DataSource;
  close(options?: { keepFiles?: boolean }): Promise<void>;
}

/** The real AppModule, built by the production factory, on a database file in a fresh temporary folder. */
export async function startTestApp(env: Record<string, string> = {}, dir?: string): Promise<TestApp> {
  const folder = dir ?? mkdtempSync(path.join(tmpdir(), 'mc-e2e-'));
  const dbPath = path.join(folder, 'mission-control.db');
  const config = loadConfig({
    MISSION_CONTROL_DB_PATH: dbPath,
    AUTH_USER: ADMIN.username,
    AUTH_PASS: ADMIN.password,
    API_KEY,
    LOG_LEVEL: 'warn',
    ...env,
  });
  // Logs go to the test's buffer: printed only if the test fails (failure-path tests log errors on purpose).
  const app = await createApp(config, { logStream: testLogStream });
  await app.init();
  watchLiveDatabase(dbPath);
  const http = app.getHttpServer() as App;
  return {
    app,
    http,
    dir: folder,
    dbPath,
    backupsDir: config.backupsDir,
    dataSource: app.get(DataSource),
    async close(options = {}) {
      unwatchLiveDatabase(dbPath);
      await app.close();
      if (!options.keepFiles) {
        rmSync(folder, { recursive: true, force: true });
      }
    },
  };
}

/** Logs in through the real route and returns the `mc-session=...` cookie pair. */
/** A request to `http` as the admin behind the API key, the usual caller of these tests. */
export function withApiKey(http: App, method: 'get' | 'post' | 'put' | 'delete', url: string): request.Test {
  return request(http)[method](url).set('x-api-key', API_KEY);
}

export async function loginCookie(http: App, username = ADMIN.username, password = ADMIN.password): Promise<string> {
  const response = await request(http).post('/api/auth/login').send({ username, password }).expect(200);
  const setCookie = response.headers['set-cookie'] as unknown as string[];
  const cookie = setCookie.find((line) => line.startsWith('mc-session='));
  if (!cookie) {
    throw new Error('login set no mc-session cookie');
  }
  return cookie.split(';')[0];
}

export async function createUser(
  http: App,
  username: string,
  role: 'viewer' | 'operator' | 'admin',
  password = `${username}-password-123`,
): Promise<{ id: number; cookie: string }> {
  const response = await request(http)
    .post('/api/auth/users')
    .set('x-api-key', API_KEY)
    .send({ username, password, role })
    .expect(201);
  return {
    id: (response.body as { user: { id: number } }).user.id,
    cookie: await loginCookie(http, username, password),
  };
}
