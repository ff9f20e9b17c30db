import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AppConfig } from '../config/app-config';
import { BackupFiles } from './backup-files';
import { BackupManifestEntity } from './backup-manifest.entity';
import { BackupManifests } from './backup-manifests';
import { BackupsController } from './backups.controller';
import { BackupsService } from './backups.service';

@Module({
  imports: [TypeOrmModule.forFeature([BackupManifestEntity])],
  controllers: [BackupsController],
  providers: [
    BackupsService,
    BackupManifests,
    {
      provide: BackupFiles,
      inject: [AppConfig],
      useFactory: (config: AppConfig) => new BackupFiles(config.backupsDir),
    },
  ],
  exports: [BackupsService, BackupFiles, BackupManifests],
})
export class BackupsModule {}
