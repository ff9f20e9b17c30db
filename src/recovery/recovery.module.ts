import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module';
import { BackupFiles } from '../backups/backup-files';
import { BackupsModule } from '../backups/backups.module';
import { FreshInstall } from './fresh-install';
import { ImportPipeline } from './import-pipeline';
import { PointInTimeRestore } from './point-in-time';
import { RecoveryController } from './recovery.controller';
import { RecoveryService } from './recovery.service';
import { RestoreRunner } from './restore-runner';
import { RestoreService } from './restore.service';

/**
 * Everything through which a file may become the live database: admission, the import pipeline, the restore (online
 * and CLI), the start-up settlement of an interrupted restore, and the drill.
 */
@Module({
  imports: [AuditModule, BackupsModule],
  controllers: [RecoveryController],
  providers: [
    RecoveryService,
    RestoreService,
    RestoreRunner,
    FreshInstall,
    PointInTimeRestore,
    { provide: ImportPipeline, inject: [BackupFiles], useFactory: (files: BackupFiles) => new ImportPipeline(files) },
  ],
  exports: [RecoveryService, RestoreService, RestoreRunner, ImportPipeline, FreshInstall],
})
export class RecoveryModule {}
