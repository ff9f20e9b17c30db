import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { BackupsModule } from '../backups/backups.module';
import { SchedulerTaskEntity } from '../scheduler/scheduler-task.entity';
import { BackupHealthState } from './backup-health-state';
import { DatabaseProbe } from './database-probe';
import { HealthController } from './health.controller';
import { HealthService } from './health.service';
import { LiveSchema } from './live-schema';
import { OffsiteHealthIndicator } from './offsite.indicator';

@Module({
  imports: [BackupsModule, TypeOrmModule.forFeature([SchedulerTaskEntity])],
  controllers: [HealthController],
  providers: [HealthService, BackupHealthState, DatabaseProbe, LiveSchema, OffsiteHealthIndicator],
  exports: [HealthService],
})
export class HealthModule {}
