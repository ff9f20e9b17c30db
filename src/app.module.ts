import { DynamicModule, Module } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
import { ScheduleModule } from '@nestjs/schedule';
import { ThrottlerModule } from '@nestjs/throttler';
import { AuditModule } from './audit/audit.module';
import { AuthModule } from './auth/auth.module';
import { BackupsModule } from './backups/backups.module';
import { RecoveryModule } from './recovery/recovery.module';
import { RecoveryStartup } from './recovery/startup-recovery';
import { AuthenticationGuard } from './auth/guards/authentication.guard';
import { CsrfGuard } from './auth/guards/csrf.guard';
import { RolesGuard } from './auth/guards/roles.guard';
import { AvailabilityGuard, RestoreInProgressGuard } from './common/availability';
import { CommonModule } from './common/common.module';
import { HttpExceptionFilter } from './http/http-exception.filter';
import { RootController } from './http/root.controller';
import { BACKUPS_RATE_LIMIT, BACKUPS_THROTTLER, RateLimitGuard, RateLimitStorage } from './http/rate-limit';
import { AppConfig } from './config/app-config';
import { ConfigModule } from './config/config.module';
import { DatabaseModule } from './database/database.module';
import { HealthModule } from './health/health.module';
import { LoggingModule } from './observability/logging.module';
import { ObservabilityModule } from './observability/observability.module';
import { SchedulerModule } from './scheduler/scheduler.module';
import { OffsiteModule, OffsiteServerStartup } from './offsite/offsite.module';
import { ReplicationModule, ReplicationServerStartup } from './replication/replication.module';
import { SettingsModule } from './settings/settings.module';

@Module({})
export class AppModule {
  /** The whole service. main.ts passes the validated environment; tests pass their own config. */
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggingModule,
        CommonModule,
        DatabaseModule,
        ScheduleModule.forRoot(),
        ThrottlerModule.forRoot({
          throttlers: [{ name: BACKUPS_THROTTLER, ...BACKUPS_RATE_LIMIT }],
          storage: new RateLimitStorage(),
        }),
        AuditModule,
        SettingsModule,
        AuthModule,
        HealthModule,
        BackupsModule,
        RecoveryModule,
        SchedulerModule,
        ObservabilityModule,
        OffsiteModule,
        ReplicationModule,
      ],
      controllers: [RootController],
      providers: [
        RecoveryStartup,
        OffsiteServerStartup,
        ReplicationServerStartup,
        // Order matters: is the service shutting down, who you are, what you may do, forgery, is a restore running
        // (only those who may call learn that), how often.
        { provide: APP_GUARD, useClass: AvailabilityGuard },
        { provide: APP_GUARD, useClass: AuthenticationGuard },
        { provide: APP_GUARD, useClass: RolesGuard },
        { provide: APP_GUARD, useClass: CsrfGuard },
        { provide: APP_GUARD, useClass: RestoreInProgressGuard },
        { provide: APP_GUARD, useClass: RateLimitGuard },
        { provide: APP_FILTER, useClass: HttpExceptionFilter },
      ],
    };
  }
}
