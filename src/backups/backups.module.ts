import { Module } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { BackupFiles } from './backup-files';
import { BackupsController } from './backups.controller';
import { BackupsService } from './backups.service';

@Module({
  controllers: [BackupsController],
  providers: [
    BackupsService,
    {
      provide: BackupFiles,
      inject: [AppConfig],
      useFactory: (config: AppConfig) => new BackupFiles(config.backupsDir),
    },
  ],
  exports: [BackupsService, BackupFiles],
})
export class BackupsModule {}
