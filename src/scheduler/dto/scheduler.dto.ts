import { ApiProperty } from '@nestjs/swagger';
import { IsIn, IsString } from 'class-validator';
import { AUTO_BACKUP_TASK, RESTORE_DRILL_TASK } from '../schedule-timing';

export const TASK_IDS = [AUTO_BACKUP_TASK, RESTORE_DRILL_TASK] as const;

export class TaskResultDto {
  /** @example true */
  ok: boolean;
  @ApiProperty({ example: 'Backup mc-backup-2026-01-01_03-00-00.db created (4096000 bytes)' })
  message: string;
  /** Unix milliseconds. @example 1767236400812 */
  timestamp: number;
}

export class SchedulerTaskDto {
  /** `auto_backup` or `restore_drill`. @example auto_backup */
  id: string;
  @ApiProperty({ example: 'Automatic backup' })
  name: string;
  /** Whether the task's setting is on (general.auto_backup, general.restore_drill). @example true */
  enabled: boolean;
  /** Unix milliseconds of the last start, or null. @example 1767236400000 */
  lastRun: number | null;
  /** Unix milliseconds of the next scheduled start (the next 03:00 UTC by default). @example 1767322800000 */
  nextRun: number | null;
  /** @example false */
  running: boolean;
  lastResult: TaskResultDto | null;
}

export class SchedulerTasksDto {
  tasks: SchedulerTaskDto[];
}

export class TriggerTaskDto {
  @ApiProperty({ enum: TASK_IDS, example: AUTO_BACKUP_TASK })
  @IsString()
  @IsIn(TASK_IDS, { message: `task_id must be one of: ${TASK_IDS.join(', ')}` })
  task_id: string;
}

export class TriggerResultDto {
  /** @example true */
  ok: boolean;
  @ApiProperty({ example: 'Backup mc-backup-2026-01-01_03-00-00.db created (4096000 bytes)' })
  message: string;
}

/** The 500 body of POST /api/scheduler: the contract's `{ ok: false, ... }`. */
export class TriggerFailureDto {
  @ApiProperty({ example: false })
  ok: boolean;
  @ApiProperty({ example: 'Backup failed' })
  error: string;
  @ApiProperty({ example: 'Backup failed' })
  message: string;
}
