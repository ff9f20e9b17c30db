import { Logger } from '@nestjs/common';
import { createApp } from './app.setup';
import { AppConfig, ConfigError, loadConfig } from './config/app-config';
import { installGracefulShutdown } from './lifecycle/graceful-shutdown';
import { logStartupSummary } from './lifecycle/startup-summary';

async function bootstrap(): Promise<void> {
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      // One line, naming the variable: what an operator reads in a failed unit's status.
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
  const app = await createApp(config);
  installGracefulShutdown(app, config);
  await app.listen(config.port, config.host);
  await logStartupSummary(app, config, new Logger('Startup'));
}

bootstrap().catch((error: unknown) => {
  console.error('Start-up failed:', error);
  process.exit(1);
});
