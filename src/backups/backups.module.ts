import { Module } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { BackupFiles } from './backup-files';
import { BackupsController } from './backups.controller';
import { BackupsService } from './backups.service';
import { OperationLock } from './operation-lock';

@Module({
  controllers: [BackupsController],
  providers: [
    BackupsService,
    OperationLock,
    { provide: BackupFiles, inject: [AppConfig], useFactory: (config: AppConfig) => new BackupFiles(config.backupsDir) },
  ],
  exports: [BackupsService, BackupFiles, OperationLock],
})
export class BackupsModule {}
