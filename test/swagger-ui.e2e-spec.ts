import type { NestExpressApplication } from '@nestjs/platform-express';
import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BrowserContext, Locator, Page } from 'playwright-core';
import { createApp } from '../src/app.setup';
import { loadConfig } from '../src/config/app-config';
import { launchChromium, watchPageProblems } from './helpers/browser-chromium';

/**
 * Swagger UI in a real browser against the real app: authorize with the API key, create a backup through
 * "Try it out", and find it in the list. Leaves a screenshot in test-artifacts/swagger-ui.png.
 */

const API_KEY = 'swagger-ui-test-key-0123456789';
const SCREENSHOT = path.resolve(__dirname, '..', 'test-artifacts', 'swagger-ui.png');
/** A plain-http host name that is not loopback to the browser (mapped to 127.0.0.1), as on a LAN. */
const LAN_HOST = 'mc-backups.test';

/** Expands an operation, presses "Try it out" and "Execute", and returns the live response's status and body. */
async function tryItOut(operation: Locator): Promise<{ status: string; body: string }> {
  await operation.locator('.opblock-summary').first().click();
  await operation.locator('button.try-out__btn').click();
  await operation.locator('button.execute').click();
  const response = operation.locator('.live-responses-table .response');
  await response.locator('.response-col_status').waitFor({ timeout: 30_000 });
  return {
    status: (await response.locator('.response-col_status').innerText()).trim(),
    body: await response.locator('.response-col_description pre').first().innerText(),
  };
}

describe('Swagger UI (e2e, Chromium)', () => {
  let dir: string;
  let app: NestExpressApplication;
  let port: number;
  let context: BrowserContext;
  let page: Page;
  let problems: string[];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(tmpdir(), 'mc-swagger-ui-'));
    const config = loadConfig({
      MISSION_CONTROL_DB_PATH: path.join(dir, 'data', 'mission-control.db'),
      AUTH_USER: 'admin',
      AUTH_PASS: 'admin-password-123',
      API_KEY,
      LOG_LEVEL: 'error',
    });
    app = await createApp(config);
    app.useLogger(['error']);
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as AddressInfo).port;
    context = await launchChromium(path.join(dir, 'chromium-profile'), [
      `--host-resolver-rules=MAP ${LAN_HOST} 127.0.0.1`,
    ]);
  }, 60_000);

  beforeEach(async () => {
    page = await context.newPage();
    problems = watchPageProblems(page);
  });

  afterEach(async () => {
    await page.close();
  });

  afterAll(async () => {
    await context?.close();
    await app?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('should authorize with the API key, create a backup with Try it out and list it', async () => {
    await page.goto(`http://127.0.0.1:${port}/api/docs`);
    await page.locator('.swagger-ui .info .title').filter({ hasText: 'Mission Control Backups' }).waitFor();

    // Authorize: the api-key scheme (x-api-key header).
    await page.locator('.swagger-ui .auth-wrapper button.authorize').click();
    const modal = page.locator('.swagger-ui .modal-ux');
    const apiKeyScheme = modal.locator('.auth-container').filter({ has: page.locator('h4', { hasText: 'api-key' }) });
    await apiKeyScheme.locator('input').fill(API_KEY);
    await apiKeyScheme.locator('button.authorize').click();
    await apiKeyScheme.locator('h6', { hasText: 'Authorized' }).waitFor();
    await apiKeyScheme.locator('button.btn-done').click();
    await modal.waitFor({ state: 'detached' });

    // POST /api/backup → 200 with the new backup.
    const created = await tryItOut(page.locator('#operations-Backups-BackupsController_create'));
    expect(created.status).toBe('200');
    const { success, backup } = JSON.parse(created.body) as { success: boolean; backup: { name: string } };
    expect(success).toBe(true);
    expect(backup.name).toMatch(/^mc-backup-.*\.db$/);

    // GET /api/backup → the new backup's name is on the page, and the request carried the key.
    const list = page.locator('#operations-Backups-BackupsController_list');
    const listed = await tryItOut(list);
    expect(listed.status).toBe('200');
    expect(listed.body).toContain(backup.name);
    await expect(list.locator('.curl-command').innerText()).resolves.toContain('x-api-key');

    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await list.locator('.live-responses-table').scrollIntoViewIfNeeded();
    await page.screenshot({ path: SCREENSHOT });
    expect(problems).toEqual([]);
  }, 60_000);

  it('should work over plain http on a non-loopback host name (helmet CSP must not upgrade its assets)', async () => {
    // Chromium treats 127.0.0.1 as secure, so only a real host name shows what an operator on a LAN sees.
    await page.goto(`http://${LAN_HOST}:${port}/api/docs`);
    await page
      .locator('.swagger-ui .info .title')
      .filter({ hasText: 'Mission Control Backups' })
      .waitFor({ timeout: 10_000 })
      .catch(() => undefined);
    expect(problems).toEqual([]);
    const health = await tryItOut(page.locator('#operations-Health-HealthController_check'));
    expect(health.status).toBe('200');
    expect(JSON.parse(health.body)).toMatchObject({ status: 'ok' });
  }, 60_000);
});
