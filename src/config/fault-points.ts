import { Injectable, Logger } from '@nestjs/common';
import { AppConfig, type RestorePausePoint } from './app-config';

/**
 * Named places in a restore where the kill tests stop it for good, to SIGKILL the process there and check what the
 * next start makes of it. Does nothing unless MC_TEST_PAUSE_AT names a point (never set in production): production
 * code only says where it is.
 */
@Injectable()
export class FaultPoints {
  private readonly logger = new Logger('FaultPoints');

  constructor(private readonly config: AppConfig) {}

  async reach(point: RestorePausePoint): Promise<void> {
    if (this.config.testPauseAt !== point) {
      return;
    }
    this.logger.warn(`MC_TEST_PAUSE_AT: the restore stops at ${point}`);
    await new Promise<never>(() => undefined);
  }
}
