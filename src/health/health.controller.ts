import { Controller, Get, HttpStatus, Inject, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { Public } from '../auth/decorators';
import { SQLITE_HANDLE, SqliteHandle } from '../database/sqlite-handle';
import { HealthResponseDto } from './health.dto';

@ApiTags('Health')
@Controller('health')
export class HealthController {
  constructor(@Inject(SQLITE_HANDLE) private readonly db: SqliteHandle) {}

  @Public()
  @Get()
  @ApiOperation({ summary: 'Liveness and readiness: does the database answer?' })
  @ApiOkResponse({ type: HealthResponseDto })
  @ApiServiceUnavailableResponse({ description: 'The database does not answer', type: HealthResponseDto })
  check(@Res({ passthrough: true }) res: Response): HealthResponseDto {
    try {
      this.db.prepare('SELECT 1').get();
      return { status: 'ok', checks: { database: { status: 'up' } } };
    } catch {
      res.status(HttpStatus.SERVICE_UNAVAILABLE);
      return { status: 'error', checks: { database: { status: 'down' } } };
    }
  }
}
