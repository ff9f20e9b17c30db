import * as fs from 'node:fs';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/** Debian's Chromium; CI installs it (`.ci/run`). Playwright's own browser download is not used. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * The flags this machine needs: root needs --no-sandbox, and without the background-networking flags Chromium
 * keeps trying (and failing) to reach Google's hosts from a closed network.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Headless Chromium with a fresh profile in `userDataDir` (a new empty folder). Throws (so the test fails, never
 * skips) when the browser is missing.
 */
export async function launchChromium(userDataDir: string, extraArgs: string[] = []): Promise<BrowserContext> {
  if (!fs.existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM_PATH}: the Swagger UI test needs it. ` +
        'Install it with `apt-get install -y chromium` (.ci/run does this in CI).',
    );
  }
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
    viewport: { width: 1280, height: 900 },
  });
}

/**
 * What goes wrong in a page without failing a locator: requests that failed (a blocked or upgraded script),
 * uncaught errors, and Content-Security-Policy refusals.
 */
export function watchPageProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('requestfailed', (request) =>
    problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`),
  );
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) {
      problems.push(`console: ${message.text()}`);
    }
  });
  return problems;
}
