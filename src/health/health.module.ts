import { Module } from '@nestjs/common';
import { BackupsModule } from '../backups/backups.module';
import { BackupHealthState } from './backup-health-state';
import { DatabaseProbe } from './database-probe';
import { HealthController } from './health.controller';
import { HealthService } from './health.service';
import { LiveSchema } from './live-schema';
import { OffsiteHealthIndicator } from './offsite.indicator';

@Module({
  imports: [BackupsModule],
  controllers: [HealthController],
  providers: [HealthService, BackupHealthState, DatabaseProbe, LiveSchema, OffsiteHealthIndicator],
  exports: [HealthService],
})
export class HealthModule {}
