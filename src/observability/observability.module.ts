import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { BackupsModule } from '../backups/backups.module';
import { SchedulerTaskEntity } from '../scheduler/scheduler-task.entity';
import { AlertsService } from './alerts.service';
import { BackupStatus } from './backup-status';
import { MetricsAccessGuard } from './metrics-access.guard';
import { MetricsController } from './metrics.controller';
import { MetricsService } from './metrics.service';
import { OpsEventsLog } from './ops-events-log';

/** Metrics (/metrics), failure alerts and the structured ops-event log; logging itself is LoggingModule. */
@Module({
  imports: [BackupsModule, TypeOrmModule.forFeature([SchedulerTaskEntity])],
  controllers: [MetricsController],
  providers: [BackupStatus, MetricsService, MetricsAccessGuard, AlertsService, OpsEventsLog],
  exports: [BackupStatus, MetricsService, AlertsService],
})
export class ObservabilityModule {}
