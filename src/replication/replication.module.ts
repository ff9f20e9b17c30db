import { Global, Injectable, Module, OnApplicationBootstrap } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module';
import { AppConfig } from '../config/app-config';
import { AgeCrypto } from '../offsite/age-crypto';
import { OffsiteBucket } from '../offsite/offsite-bucket';
import { SettingsModule } from '../settings/settings.module';
import { ReplicaStore } from './replica-store';
import { ReplicationController } from './replication.controller';
import { ReplicationProgress } from './replication-progress';
import { REPLICA_STORE, ReplicationService } from './replication.service';

/**
 * Continuous replication. Global so health and metrics can read ReplicationProgress and the restore path can
 * inject ReplicationService; the shipper itself is started by the service process only (ReplicationServerStartup).
 */
@Global()
@Module({
  imports: [AuditModule, SettingsModule],
  controllers: [ReplicationController],
  providers: [
    ReplicationService,
    ReplicationProgress,
    {
      provide: REPLICA_STORE,
      inject: [AppConfig],
      useFactory: (config: AppConfig): ReplicaStore | null =>
        config.offsite && config.replication
          ? new ReplicaStore(
              new OffsiteBucket(config.offsite, config.offsiteRequestTimeoutMs),
              new AgeCrypto(config.offsite.recipients, config.offsite.identityFile),
            )
          : null,
    },
  ],
  exports: [ReplicationService, ReplicationProgress],
})
export class ReplicationModule {}

/** Registered by AppModule only: streaming runs in the service, never in a CLI command. */
@Injectable()
export class ReplicationServerStartup implements OnApplicationBootstrap {
  constructor(private readonly replication: ReplicationService) {}

  onApplicationBootstrap(): void {
    this.replication.start();
  }
}
