import { Injectable, OnModuleInit } from '@nestjs/common';
import { BackupsService } from './backups.service';

/**
 * Start-up work that belongs to the service alone (AppModule provides it; the CLI does not): the service owns
 * the backups folder's temp files, so only its start may sweep the ones a killed backup left behind.
 */
@Injectable()
export class BackupsServerStartup implements OnModuleInit {
  constructor(private readonly backups: BackupsService) {}

  onModuleInit(): Promise<void> {
    return this.backups.removeLeftovers();
  }
}
