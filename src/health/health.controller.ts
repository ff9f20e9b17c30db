import { Controller, Get, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { Public } from '../auth/decorators';
import { HealthResponseDto } from './health.dto';
import { HealthService } from './health.service';

@ApiTags('Health')
@Controller('health')
export class HealthController {
  constructor(private readonly health: HealthService) {}

  @Public()
  @Get()
  @ApiOperation({
    summary: 'Readiness: database, disk space beside the backups, age of the last backup',
    description:
      '200 `ok`, or `degraded` when auto-backup is on and the last successful backup is over 26 hours old, or ' +
      'free disk space beside the backups is under twice the last backup. 503 `error` when the database does ' +
      'not answer or the service is shutting down.',
  })
  @ApiOkResponse({ type: HealthResponseDto })
  @ApiServiceUnavailableResponse({ description: 'Database down, or shutting down', type: HealthResponseDto })
  async check(@Res({ passthrough: true }) res: Response): Promise<HealthResponseDto> {
    const report = await this.health.check();
    res.status(report.httpStatus);
    res.setHeader('Cache-Control', 'no-store');
    return report.body;
  }
}
