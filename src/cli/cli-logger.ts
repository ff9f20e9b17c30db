import { ConsoleLogger, type LogLevel } from '@nestjs/common';
import type { AppConfig } from '../config/app-config';

/** Nest's console logger with every line on stderr, so stdout carries only results (and `--json` stays parseable). */
export class CliLogger extends ConsoleLogger {
  constructor(config: AppConfig) {
    super('cli', { logLevels: levelsFor(config) });
  }

  protected override printMessages(
    messages: unknown[],
    context?: string,
    logLevel?: LogLevel,
    _writeStreamType?: 'stdout' | 'stderr',
    errorStack?: unknown,
  ): void {
    super.printMessages(messages, context, logLevel, 'stderr', errorStack);
  }
}

/** Quiet by default (results are printed by the commands); LOG_LEVEL=debug or trace shows the app's own logs. */
function levelsFor(config: AppConfig): LogLevel[] {
  switch (config.logLevel) {
    case 'trace':
      return ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];
    case 'debug':
      return ['fatal', 'error', 'warn', 'log', 'debug'];
    default:
      return ['fatal', 'error', 'warn'];
  }
}
