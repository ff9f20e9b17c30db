import { Controller, Get, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import type { AuthUser } from '../auth/auth-user';
import { CurrentUser, OptionalAuth } from '../auth/decorators';
import { HealthResponseDto } from './health.dto';
import { HealthService } from './health.service';

@ApiTags('Health')
@Controller('health')
export class HealthController {
  constructor(private readonly health: HealthService) {}

  @OptionalAuth()
  @Get()
  @ApiOperation({
    summary: 'Readiness: database, disk space beside the backups, the last backup',
    description:
      'No authentication needed; anonymous callers see each check’s status only, admins (cookie or API key) also ' +
      'the details (sizes, times, messages). 200 `ok`, or `degraded` when the most recent backup attempt failed, ' +
      'auto-backup is on and the last successful backup is over 26 hours old, free disk space beside the backups ' +
      'is under twice the last backup, or the live schema is not this application’s. 503 `error` when the ' +
      'database does not answer, its scheduled quick_check failed, its -wal/-shm was deleted under the service, ' +
      'or the service is shutting down. Each call costs the same whatever the number of backups.',
  })
  @ApiOkResponse({ type: HealthResponseDto })
  @ApiServiceUnavailableResponse({ description: 'Database down, or shutting down', type: HealthResponseDto })
  async check(
    @CurrentUser() user: AuthUser | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<HealthResponseDto> {
    const report = await this.health.check(user?.role === 'admin');
    res.status(report.httpStatus);
    res.setHeader('Cache-Control', 'no-store');
    return report.body;
  }
}
