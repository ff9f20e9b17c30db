import { Body, Controller, HttpCode, HttpStatus, Post, Query, Req } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBody,
  ApiConsumes,
  ApiCreatedResponse,
  ApiInternalServerErrorResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiPayloadTooLargeResponse,
  ApiQuery,
  ApiServiceUnavailableResponse,
  ApiTags,
  ApiUnsupportedMediaTypeResponse,
} from '@nestjs/swagger';
import type { Request } from 'express';
import type { AuthUser } from '../auth/auth-user';
import { AdminOnly, CurrentUser } from '../auth/decorators';
import { presentedSessionToken } from '../auth/session-cookie';
import { requireBackupName } from '../backups/backup-name.pipe';
import { InputError } from '../common/api-error';
import { ErrorResponseDto } from '../common/error-response.dto';
import { BackupsRateLimit } from '../http/rate-limit';
import { requestMeta } from '../common/request-meta';
import {
  RestoreBackupDto,
  RestoreFailedDto,
  RestoreRefusedDto,
  RestoreResponseDto,
  UploadResponseDto,
  VerifyBackupDto,
  VerifyResultDto,
} from './dto/recovery.dto';
import { EMPTY_UPLOAD, RecoveryService } from './recovery.service';
import { PointInTimeRestore } from './point-in-time';
import { RestoreService } from './restore.service';

/** Verify, upload and restore: the routes through which a file may become the live database. */
@ApiTags('Backups')
@Controller('backup')
@AdminOnly()
export class RecoveryController {
  constructor(
    private readonly recovery: RecoveryService,
    private readonly restores: RestoreService,
    private readonly pointInTime: PointInTimeRestore,
  ) {}

  @Post('verify')
  @HttpCode(200)
  @BackupsRateLimit()
  @ApiOperation({
    summary: 'Verify a backup: full integrity_check (read-only, off the main thread) and sha256 against its manifest',
    description: 'A file SQLite cannot open at all answers ok:false with integrity saying why. Records verified_at.',
  })
  @ApiBody({ type: VerifyBackupDto })
  @ApiOkResponse({ type: VerifyResultDto })
  @ApiBadRequestResponse({ description: 'Invalid backup name', type: ErrorResponseDto })
  @ApiNotFoundResponse({ description: 'No such backup', type: ErrorResponseDto })
  verify(@Body() body: VerifyBackupDto, @CurrentUser() user: AuthUser, @Req() req: Request): Promise<VerifyResultDto> {
    return this.recovery.verify(requireBackupName(body.name), user, requestMeta(req));
  }

  @Post('upload')
  @HttpCode(201)
  @BackupsRateLimit()
  @ApiOperation({
    summary: 'Upload a backup file (raw body) to keep as mc-upload-….db',
    description:
      'The body is streamed to disk (never held in memory) and capped by MAX_UPLOAD_BYTES. It is kept only once ' +
      'it opens as SQLite, passes integrity_check and holds this application’s tables at a schema version this ' +
      'build knows; a WAL-mode file is converted to a standalone one. Otherwise nothing is kept.',
  })
  @ApiConsumes('application/octet-stream')
  @ApiBody({ schema: { type: 'string', format: 'binary' } })
  @ApiQuery({ name: 'name', required: false, description: 'The original file name, for the audit only' })
  @ApiCreatedResponse({ type: UploadResponseDto })
  @ApiBadRequestResponse({
    description: 'The body is empty, or not a whole, sound database of this application',
    type: ErrorResponseDto,
  })
  @ApiPayloadTooLargeResponse({ description: 'Larger than MAX_UPLOAD_BYTES', type: ErrorResponseDto })
  @ApiUnsupportedMediaTypeResponse({
    description: 'Content-Type is not application/octet-stream',
    type: ErrorResponseDto,
  })
  upload(@Query('name') hint: unknown, @CurrentUser() user: AuthUser, @Req() req: Request): Promise<UploadResponseDto> {
    // No Content-Length and no Transfer-Encoding: nothing was sent at all, whatever the Content-Type says.
    if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined) {
      throw new InputError(EMPTY_UPLOAD);
    }
    if (!req.is('application/octet-stream')) {
      throw new InputError(
        'Send the file as Content-Type: application/octet-stream',
        {},
        HttpStatus.UNSUPPORTED_MEDIA_TYPE,
      );
    }
    return this.recovery.upload(req, req.headers['content-length'], hint, user, requestMeta(req));
  }

  @Post('restore')
  @HttpCode(200)
  @BackupsRateLimit()
  @ApiOperation({
    summary: 'Restore a backup into the live database, online',
    description:
      'Verifies the backup (checksum, integrity_check, schema) and copies it to a scratch file, migrated when older. ' +
      'Then, holding the live database’s write lock: a safety backup, what a restore keeps (the audit log, the ' +
      'backups’ manifests, the scheduler’s state, the caller’s session) written into the scratch copy with the ' +
      'restore’s own audit event, a check that an admin exists, and the pages copied in as one transaction. Any ' +
      'failure leaves the live database exactly as the safety backup holds it (rolled_back: true). Meanwhile other ' +
      'mutating requests get 503 with Retry-After.',
  })
  @ApiBody({ type: RestoreBackupDto })
  @ApiOkResponse({ type: RestoreResponseDto })
  @ApiBadRequestResponse({ description: 'Invalid name, or the backup failed verification', type: RestoreRefusedDto })
  @ApiNotFoundResponse({ description: 'No such backup', type: ErrorResponseDto })
  @ApiServiceUnavailableResponse({ description: 'Another restore is running', type: ErrorResponseDto })
  @ApiInternalServerErrorResponse({
    description: 'Restore failed (rolled_back says whether undone)',
    type: RestoreFailedDto,
  })
  restore(
    @Body() body: RestoreBackupDto,
    @CurrentUser() user: AuthUser,
    @Req() req: Request,
  ): Promise<RestoreResponseDto> {
    const request = {
      actor: user,
      meta: requestMeta(req),
      sessionToken: user.via === 'session' ? presentedSessionToken(req) : undefined,
    };
    if (body.point_in_time !== undefined) {
      if (body.name !== undefined) {
        throw new InputError('Give either name or point_in_time, not both');
      }
      return this.pointInTime.restore(body.point_in_time, request);
    }
    return this.restores.restore(requireBackupName(body.name), request);
  }
}
