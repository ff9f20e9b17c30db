import { Injectable, OnModuleInit } from '@nestjs/common';
import { BackupsService } from '../backups/backups.service';
import { RestoreRunner } from './restore-runner';

/**
 * Start-up work that belongs to the service alone (AppModule provides it; the CLI does not): the service owns
 * the backups folder's temp files, so only its start may sweep the ones a killed backup left behind.
 */
@Injectable()
export class RecoveryStartup implements OnModuleInit {
  constructor(
    private readonly backups: BackupsService,
    private readonly restores: RestoreRunner,
  ) {}

  /** A restore cut short by a crash is settled before anything else, then temp files are swept. */
  async onModuleInit(): Promise<void> {
    this.restores.recover();
    await this.backups.removeLeftovers();
  }
}
