import { Controller, Get, HttpCode, Post, Req } from '@nestjs/common';
import { ApiBadRequestResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request } from 'express';
import type { AuthUser } from '../auth/auth-user';
import { AdminOnly, CurrentUser } from '../auth/decorators';
import { ErrorResponseDto } from '../common/error-response.dto';
import { BackupsRateLimit } from '../http/rate-limit';
import { requestMeta } from '../common/request-meta';
import { ReplicationSnapshotDto, ReplicationStatusDto } from './dto/replication.dto';
import { ReplicationService } from './replication.service';

@ApiTags('Replication')
@Controller('backup/replication')
@AdminOnly()
export class ReplicationController {
  constructor(private readonly replication: ReplicationService) {}

  @Get()
  @ApiOperation({
    summary: 'Continuous replication: status, lag, and the point-in-time window held in the bucket',
    description: 'Times are ISO-8601. lag_ms is the age of the oldest commit not yet in the bucket (0 when none).',
  })
  @ApiOkResponse({ type: ReplicationStatusDto })
  status(): Promise<ReplicationStatusDto> {
    return this.replication.status();
  }

  @Post('snapshot')
  @HttpCode(200)
  @BackupsRateLimit()
  @ApiOperation({
    summary: 'Start a new replication generation now, from a full snapshot',
    description: 'Answers once the snapshot is taken; the old generation stays restorable up to the switch.',
  })
  @ApiOkResponse({ type: ReplicationSnapshotDto })
  @ApiBadRequestResponse({ description: 'Replication is off', type: ErrorResponseDto })
  snapshot(@CurrentUser() user: AuthUser, @Req() req: Request): Promise<ReplicationSnapshotDto> {
    return this.replication.snapshotNow(user, requestMeta(req));
  }
}
