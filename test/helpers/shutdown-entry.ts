/**
 * What src/main.ts does, as a child process for test/shutdown.e2e-spec.ts: configuration from the environment,
 * the production app factory, the graceful SIGTERM handling, and a listening port (PORT=0 picks a free one).
 * Prints `LISTENING <port>` on stdout once it accepts requests.
 * Run with: node -r ts-node/register/transpile-only test/helpers/shutdown-entry.ts
 */
import type { AddressInfo } from 'node:net';
import { createApp } from '../../src/app.setup';
import { loadConfig } from '../../src/config/app-config';
import { installGracefulShutdown } from '../../src/lifecycle/graceful-shutdown';

async function main(): Promise<void> {
  const config = loadConfig();
  const app = await createApp(config);
  installGracefulShutdown(app, config);
  await app.listen(config.port, config.host);
  const { port } = app.getHttpServer().address() as AddressInfo;
  process.stdout.write(`LISTENING ${port}\n`);
}

main().catch((error: unknown) => {
  console.error('shutdown-entry failed to start:', error);
  process.exit(2);
});
