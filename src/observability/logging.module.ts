import { Module } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import { AppConfig } from '../config/app-config';
import { loggerParams } from './logging';
import { OBSERVABILITY_OPTIONS, ObservabilityOptions } from './observability-options';

/**
 * Structured logs (nestjs-pino): request lines and, once createApp calls `app.useLogger(app.get(Logger))`, every
 * Nest `Logger` call. Imported early in AppModule so its request middleware runs before any other.
 */
@Module({
  imports: [
    LoggerModule.forRootAsync({
      inject: [AppConfig, { token: OBSERVABILITY_OPTIONS, optional: true }],
      useFactory: (config: AppConfig, options?: ObservabilityOptions) => loggerParams(config, options?.logStream),
    }),
  ],
})
export class LoggingModule {}
