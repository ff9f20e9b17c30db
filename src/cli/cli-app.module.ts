import { DynamicModule, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { SessionEntity } from '../auth/session.entity';
import { UserEntity } from '../auth/user.entity';
import { AuditModule } from '../audit/audit.module';
import { BackupsModule } from '../backups/backups.module';
import { RecoveryModule } from '../recovery/recovery.module';
import { CommonModule } from '../common/common.module';
import { AppConfig } from '../config/app-config';
import { ConfigModule } from '../config/config.module';
import { DatabaseModule } from '../database/database.module';
import { OffsiteModule } from '../offsite/offsite.module';
import { SettingsModule } from '../settings/settings.module';

/**
 * The part of the app the CLI needs: configuration, the database with its migrations, audit, settings and the
 * backups module (BackupsService, RecoveryService, manifests), exactly as the service wires them. Deliberately
 * absent: the HTTP server and global guards, ScheduleModule and the scheduler (a CLI run must never fire the 03:00
 * job), and AuthModule (its first-start hook would create an admin with a random password); only the user and
 * session tables are registered, for `users reset-password`.
 */
@Module({})
export class CliAppModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: CliAppModule,
      // OffsiteModule without its worker: a backup made here is queued for the service, and retention keeps backups
      // not uploaded yet, exactly as in the service.
      imports: [
        ConfigModule.forRoot(config),
        CommonModule,
        DatabaseModule,
        AuditModule,
        SettingsModule,
        BackupsModule,
        RecoveryModule,
        // Users and sessions without AuthModule, for `users reset-password`.
        TypeOrmModule.forFeature([UserEntity, SessionEntity]),
        OffsiteModule,
      ],
    };
  }
}
