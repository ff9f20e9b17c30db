import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { BackupFiles } from '../backups/backup-files';
import { AUTO_BACKUP_TASK } from '../scheduler/schedule-timing';
import { SchedulerTaskEntity } from '../scheduler/scheduler-task.entity';

export interface BackupStatusSnapshot {
  /** Unix ms of the last successful backup we made, or null when there never was one. */
  lastSuccessMs: number | null;
  /** Size of the newest backup we made (uploads excluded), or null. */
  lastBackupSize: number | null;
  /** Backup files on disk, every kind. */
  count: number;
  totalBytes: number;
}

/**
 * What health and metrics know about past backups, read from the database and the folder (so it survives a
 * restart): the last success is the later of `scheduler_tasks.last_success_at` of `auto_backup` and the time
 * in the name of the newest backup file this service made (manual, scheduled or safety; uploads are copies of
 * older databases, so they do not count).
 */
@Injectable()
export class BackupStatus {
  constructor(
    @InjectRepository(SchedulerTaskEntity) private readonly tasks: Repository<SchedulerTaskEntity>,
    private readonly backupFiles: BackupFiles,
  ) {}

  /** Count and total size of the backup files, without touching the database. */
  async files(): Promise<Pick<BackupStatusSnapshot, 'count' | 'totalBytes'>> {
    const files = await this.backupFiles.list();
    return { count: files.length, totalBytes: files.reduce((sum, file) => sum + file.size, 0) };
  }

  async read(): Promise<BackupStatusSnapshot> {
    const [task, files] = await Promise.all([this.tasks.findOneBy({ id: AUTO_BACKUP_TASK }), this.backupFiles.list()]);
    const newestOwn = files.find((file) => file.kind !== 'upload' && file.kind !== null);
    const candidates = [task?.lastSuccessAt ?? null, newestOwn?.createdAtMs ?? null].filter(
      (value): value is number => value !== null,
    );
    return {
      lastSuccessMs: candidates.length > 0 ? Math.max(...candidates) : null,
      lastBackupSize: newestOwn?.size ?? null,
      count: files.length,
      totalBytes: files.reduce((sum, file) => sum + file.size, 0),
    };
  }
}
