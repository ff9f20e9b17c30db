import { Injectable, Logger, Module, OnApplicationBootstrap } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module';
import { BackupsModule } from '../backups/backups.module';
import { AppConfig } from '../config/app-config';
import { RecoveryModule } from '../recovery/recovery.module';
import { SettingsModule } from '../settings/settings.module';
import { AgeCrypto } from './age-crypto';
import { OffsiteBucket } from './offsite-bucket';
import { OffsiteController } from './offsite.controller';
import { OffsiteOutbox } from './offsite-outbox';
import { OffsiteTracker } from './offsite-tracker';
import { BucketRetention } from './bucket-retention';
import { OFFSITE_BUCKET, OFFSITE_CRYPTO, reasonOf } from './offsite-common';
import { RemoteService } from './remote.service';
import { UploadPipeline } from './upload-pipeline';
import { UploadWorker } from './upload-worker';

/** Off-site copies: imported by the service and the CLI; the worker is started by the service only. */
@Module({
  imports: [AuditModule, SettingsModule, BackupsModule, RecoveryModule],
  controllers: [OffsiteController],
  providers: [
    UploadWorker,
    UploadPipeline,
    BucketRetention,
    RemoteService,
    OffsiteOutbox,
    OffsiteTracker,
    {
      provide: OFFSITE_BUCKET,
      inject: [AppConfig],
      useFactory: (config: AppConfig): OffsiteBucket | null =>
        config.offsite ? new OffsiteBucket(config.offsite, config.offsiteRequestTimeoutMs) : null,
    },
    {
      provide: OFFSITE_CRYPTO,
      inject: [AppConfig],
      useFactory: (config: AppConfig): AgeCrypto =>
        new AgeCrypto(config.offsite?.recipients ?? [], config.offsite?.identityFile),
    },
  ],
  exports: [UploadWorker, RemoteService],
})
export class OffsiteModule {}

/** Registered by AppModule only: the upload worker runs in the service, never in a CLI command. */
@Injectable()
export class OffsiteServerStartup implements OnApplicationBootstrap {
  private readonly logger = new Logger(OffsiteServerStartup.name);

  constructor(private readonly worker: UploadWorker) {}

  onApplicationBootstrap(): void {
    // Not awaited: a slow or unreachable bucket must not hold up the service's start.
    this.worker
      .start()
      .catch((error: unknown) => this.logger.error(`Off-site worker failed to start: ${reasonOf(error)}`));
  }
}
