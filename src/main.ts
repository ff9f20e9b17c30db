import { Logger } from '@nestjs/common';
import { createApp } from './app.setup';
import { AppConfig, ConfigError, loadConfig } from './config/app-config';
import { installGracefulShutdown } from './lifecycle/graceful-shutdown';

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
  const shownHost = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  const url = `http://${shownHost}:${config.port}`;
  const logger = new Logger('Bootstrap');
  logger.log(`Mission Control Backups listening on ${url} (database ${config.dbPath})`);
  logger.log(`Log in through Swagger UI at ${url}/api/docs (POST /api/auth/login), or with curl`);
}

bootstrap().catch((error: unknown) => {
  console.error('Start-up failed:', error);
  process.exit(1);
});
