import { Body, Controller, Get, HttpCode, Post, Query, Req } from '@nestjs/common';
import {
  ApiBadGatewayResponse,
  ApiBadRequestResponse,
  ApiBody,
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
  ApiUnprocessableEntityResponse,
} from '@nestjs/swagger';
import type { Request } from 'express';
import type { AuthUser } from '../auth/auth-user';
import { AdminOnly, CurrentUser } from '../auth/decorators';
import { ErrorResponseDto } from '../common/error-response.dto';
import { BackupsRateLimit } from '../http/rate-limit';
import { requestMeta } from '../common/request-meta';
import {
  PullResponseDto,
  RemoteListDto,
  RemoteListQueryDto,
  RemoteNameDto,
  RemoteSyncDto,
  RemoteVerifyDto,
} from './dto/offsite.dto';
import { RemoteService } from './remote.service';
import { UploadWorker } from './upload-worker';

const NOT_CONFIGURED = 'Off-site not configured (OFFSITE_S3_BUCKET unset), or an invalid name';
const BUCKET_FAILED = 'The bucket did not answer or refused (the reason is a short code)';

@ApiTags('Off-site')
@Controller('backup/remote')
@AdminOnly()
export class OffsiteController {
  constructor(
    private readonly remote: RemoteService,
    private readonly worker: UploadWorker,
  ) {}

  @Get()
  @ApiOperation({
    summary: 'List the off-site copies, read from the bucket itself, newest first',
    description:
      'Copies made by another machine under the same prefix show too. `limit`/`offset` page through a large ' +
      'bucket: names and sizes come from the LIST pages, manifests are read only for the copies returned.',
  })
  @ApiOkResponse({ type: RemoteListDto })
  @ApiBadRequestResponse({ description: NOT_CONFIGURED, type: ErrorResponseDto })
  @ApiBadGatewayResponse({ description: BUCKET_FAILED, type: ErrorResponseDto })
  list(@Query() query: RemoteListQueryDto): Promise<RemoteListDto> {
    return this.remote.list(query);
  }

  @Post('sync')
  @HttpCode(200)
  @BackupsRateLimit()
  @ApiOperation({
    summary: 'Try every pending off-site upload now (back-off or not) and count what this call did',
  })
  @ApiOkResponse({ type: RemoteSyncDto })
  @ApiBadRequestResponse({ description: NOT_CONFIGURED, type: ErrorResponseDto })
  sync(): Promise<RemoteSyncDto> {
    return this.worker.uploadPendingNow();
  }

  @Post('verify')
  @HttpCode(200)
  @BackupsRateLimit()
  @ApiOperation({
    summary: 'Read an off-site copy back and check it against its manifest',
    description:
      'Hashes the stored object against object_sha256; with BACKUP_ENCRYPTION_IDENTITY_FILE also decrypts it to a ' +
      'scratch file (removed afterwards), hashes it against sha256 and runs integrity_check. `checked` lists what ' +
      'was checked; `ok` is null when only the stored bytes could be (encrypted, no identity).',
  })
  @ApiBody({ type: RemoteNameDto })
  @ApiOkResponse({ type: RemoteVerifyDto })
  @ApiBadRequestResponse({ description: NOT_CONFIGURED, type: ErrorResponseDto })
  @ApiNotFoundResponse({ description: 'No off-site copy of that name', type: ErrorResponseDto })
  @ApiUnprocessableEntityResponse({
    description: 'The copy has no valid manifest to check it against',
    type: ErrorResponseDto,
  })
  @ApiBadGatewayResponse({ description: BUCKET_FAILED, type: ErrorResponseDto })
  verify(@Body() body: RemoteNameDto, @CurrentUser() user: AuthUser, @Req() req: Request): Promise<RemoteVerifyDto> {
    return this.remote.verify(body.name, user, requestMeta(req));
  }

  @Post('pull')
  @HttpCode(201)
  @BackupsRateLimit()
  @ApiOperation({
    summary: 'Download an off-site copy into the backups folder under its own name',
    description:
      'Downloads, decrypts, checks sha256 and integrity_check, then keeps it; POST /api/backup/restore then works ' +
      'on it as on any backup. Never replaces a local file.',
  })
  @ApiBody({ type: RemoteNameDto })
  @ApiCreatedResponse({ type: PullResponseDto })
  @ApiBadRequestResponse({
    description: 'Not configured, an invalid name, or encrypted with no identity configured',
    type: ErrorResponseDto,
  })
  @ApiNotFoundResponse({ description: 'No off-site copy of that name', type: ErrorResponseDto })
  @ApiConflictResponse({ description: 'A local backup of that name exists', type: ErrorResponseDto })
  @ApiUnprocessableEntityResponse({
    description: 'The copy does not decrypt, match its manifest or pass integrity_check',
    type: ErrorResponseDto,
  })
  @ApiBadGatewayResponse({ description: BUCKET_FAILED, type: ErrorResponseDto })
  pull(@Body() body: RemoteNameDto, @CurrentUser() user: AuthUser, @Req() req: Request): Promise<PullResponseDto> {
    return this.remote.pull(body.name, user, requestMeta(req));
  }
}
