import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { BackupsModule } from '../backups/backups.module';
import { RecoveryModule } from '../recovery/recovery.module';
import { SchedulerTaskEntity } from './scheduler-task.entity';
import { SchedulerController } from './scheduler.controller';
import { SchedulerService } from './scheduler.service';

@Module({
  imports: [TypeOrmModule.forFeature([SchedulerTaskEntity]), BackupsModule, RecoveryModule],
  controllers: [SchedulerController],
  providers: [SchedulerService],
  exports: [SchedulerService],
})
export class SchedulerModule {}
