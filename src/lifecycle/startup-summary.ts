import type { INestApplication, LoggerService } from '@nestjs/common';
import type { AddressInfo } from 'node:net';
import type { AppConfig } from '../config/app-config';
import { SchedulerService } from '../scheduler/scheduler.service';
import { SettingsService } from '../settings/settings.service';

/**
 * The few lines an operator reads after `npm start`: where it listens, the database and backups folder, the
 * schedule, off-site copies, and what is configured (names only: no secret ever reaches a log line). Nest's own module and route
 * lines are at debug (see QuietStartupLogger).
 */
export async function startupSummary(app: INestApplication, config: AppConfig): Promise<string[]> {
  const address = app.getHttpServer().address() as AddressInfo | string | null;
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  const url = `http://${host}:${port}`;
  const settings = app.get(SettingsService);
  const [autoBackup, cron, drill] = await Promise.all([
    settings.getBoolean('general.auto_backup'),
    settings.get('general.backup_cron'),
    settings.getBoolean('general.restore_drill'),
  ]);
  const tasks = await app.get(SchedulerService).list();
  const next = tasks.find((task) => task.id === 'auto_backup')?.nextRun ?? null;
  const set = (value: unknown): string => (value === undefined || value === null ? 'not set' : 'set');
  return [
    `Listening on ${url} (address ${config.host}, port ${port}); Swagger UI ${url}/api/docs, metrics ${url}/metrics`,
    `Database ${config.dbPath}; backups folder ${config.backupsDir}`,
    `Automatic backup ${autoBackup ? 'on' : 'off'} (general.auto_backup), schedule "${cron}" UTC` +
      (autoBackup && next !== null ? `, next run ${new Date(next).toISOString()}` : '') +
      `; restore drill ${drill ? 'on' : 'off'}`,
    `Configured: API_KEY ${set(config.apiKey)}, METRICS_TOKEN ${set(config.metricsToken)}, ` +
      `MC_COOKIE_SECURE ${config.cookieSecure}, TRUSTED_PROXIES ${config.trustedProxies.join(',') || 'none'}, ` +
      `MAX_UPLOAD_BYTES ${config.maxUploadBytes}, SHUTDOWN_TIMEOUT_MS ${config.shutdownTimeoutMs}, ` +
      `LOG_LEVEL ${config.logLevel}`,
    `${offsiteLine(config)}; replication: off`,
  ];
}

/** Names and places only: the configuration refuses an endpoint URL with credentials in it. */
function offsiteLine({ offsite }: AppConfig): string {
  if (offsite === undefined) {
    return 'Off-site copies: off (OFFSITE_S3_BUCKET not set)';
  }
  const encryption =
    offsite.recipients.length > 0
      ? `encrypted to ${offsite.recipients.length} age recipient${offsite.recipients.length === 1 ? '' : 's'}`
      : 'NOT encrypted (OFFSITE_ALLOW_PLAINTEXT)';
  return (
    `Off-site copies: on, bucket "${offsite.bucket}" at ${offsite.endpoint ?? 'AWS S3'}, prefix "${offsite.prefix}", ` +
    `${encryption}, ` +
    `BACKUP_ENCRYPTION_IDENTITY_FILE ${offsite.identityFile === undefined ? 'not set' : 'set'}`
  );
}

export async function logStartupSummary(
  app: INestApplication,
  config: AppConfig,
  logger: LoggerService,
): Promise<void> {
  for (const line of await startupSummary(app, config)) {
    logger.log(line);
  }
}
