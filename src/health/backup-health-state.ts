import { Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import type { Subscription } from 'rxjs';
import { BackupFiles } from '../backups/backup-files';
import { Clock } from '../common/clock';
import { OpsEvents } from '../common/ops-events';

/**
 * What health knows about the backups folder, kept current by the ops events instead of listing the folder per
 * call (which made health calls slow and memory-hungry with many backups). The folder is
 * listed once at start-up and once after each restore (which adds a safety copy); backups and their failures come
 * from `backup_succeeded` / `backup_failed`.
 */
@Injectable()
export class BackupHealthState implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(BackupHealthState.name);
  private subscription: Subscription | undefined;
  /** Unix ms of the newest backup this service made (manual, scheduled, safety), from the folder or an event. */
  lastOwnBackupMs: number | null = null;
  /** Size of that backup. */
  lastBackupSize: number | null = null;
  /** The most recent backup attempt failed: set by `backup_failed`, cleared by the next `backup_succeeded`. */
  lastFailure: { at: number; reason: string } | null = null;
  /** How many times the folder was listed (a test counts them). */
  folderReads = 0;

  constructor(
    private readonly files: BackupFiles,
    private readonly events: OpsEvents,
    private readonly clock: Clock,
  ) {}

  async onModuleInit(): Promise<void> {
    await this.readFolder();
    this.subscription = this.events.subscribe(async (event) => {
      switch (event.type) {
        case 'backup_succeeded':
          this.lastOwnBackupMs = this.clock.nowMs();
          this.lastBackupSize = event.size;
          this.lastFailure = null;
          break;
        case 'backup_failed':
          this.lastFailure = { at: this.clock.nowSeconds(), reason: event.reason };
          break;
        case 'restore_succeeded':
        case 'restore_failed':
          await this.readFolder();
          break;
        default:
          break;
      }
    });
  }

  onModuleDestroy(): void {
    this.subscription?.unsubscribe();
  }

  private async readFolder(): Promise<void> {
    this.folderReads += 1;
    try {
      const newestOwn = (await this.files.list()).find((file) => file.kind !== 'upload' && file.kind !== null);
      if (newestOwn && (this.lastOwnBackupMs === null || newestOwn.createdAtMs > this.lastOwnBackupMs)) {
        this.lastOwnBackupMs = newestOwn.createdAtMs;
        this.lastBackupSize = newestOwn.size;
      }
    } catch (error) {
      this.logger.warn(`Could not list the backups folder: ${error instanceof Error ? error.name : 'error'}`);
    }
  }
}
