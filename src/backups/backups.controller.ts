import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  HttpStatus,
  Post,
  Query,
  Req,
  Res,
  StreamableFile,
} from '@nestjs/common';
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
  ApiProduces,
  ApiQuery,
  ApiServiceUnavailableResponse,
  ApiTags,
  ApiUnsupportedMediaTypeResponse,
} from '@nestjs/swagger';
import type { Request, Response } from 'express';
import type { AuthUser } from '../auth/auth-user';
import { AdminOnly, CurrentUser } from '../auth/decorators';
import { ErrorResponseDto } from '../common/error-response.dto';
import { BackupsRateLimit } from '../common/rate-limit';
import { InputError } from '../common/api-error';
import { requestMeta } from '../common/request-meta';
import { SESSION_COOKIE } from '../auth/decorators';
import { BackupsService } from './backups.service';
import { BackupListDto, CreateBackupResponseDto, DeleteBackupDto, SuccessDto } from './dto/backup.dto';
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

const EXAMPLE_NAME = 'mc-backup-2026-01-01_03-00-00.db';

@ApiTags('Backups')
@Controller('backup')
@AdminOnly()
export class BackupsController {
  constructor(
    private readonly backups: BackupsService,
    private readonly recovery: RecoveryService,
  ) {}

  @Get()
  @ApiOperation({ summary: 'List backups, newest first (by the time in the name)' })
  @ApiOkResponse({ type: BackupListDto })
  list(): Promise<BackupListDto> {
    return this.backups.list();
  }

  @Post()
  @HttpCode(200)
  @BackupsRateLimit()
  @ApiOperation({
    summary: 'Create a backup now',
    description:
      'A hot, consistent snapshot through SQLite’s online backup API; the database stays online and writable. ' +
      'The copy is checked (quick_check) and published atomically; then the retention count is applied.',
  })
  @ApiOkResponse({ type: CreateBackupResponseDto })
  @ApiInternalServerErrorResponse({ description: 'Backup failed (details in the server log)', type: ErrorResponseDto })
  async create(@CurrentUser() user: AuthUser, @Req() req: Request): Promise<CreateBackupResponseDto> {
    const backup = await this.backups.create({ actor: user, kind: 'manual', meta: requestMeta(req) });
    return { success: true, backup };
  }

  @Delete()
  @BackupsRateLimit()
  @ApiOperation({ summary: 'Delete a backup by name (body `{ "name" }` or `?name=`)' })
  @ApiBody({ type: DeleteBackupDto, required: false })
  @ApiQuery({ name: 'name', required: false, example: 'mc-backup-2026-01-01_03-00-00.db' })
  @ApiOkResponse({ type: SuccessDto })
  @ApiBadRequestResponse({ description: 'Invalid backup name', type: ErrorResponseDto })
  @ApiNotFoundResponse({ description: 'No such backup', type: ErrorResponseDto })
  async remove(
    @Body() body: DeleteBackupDto | undefined,
    @Query('name') queryName: unknown,
    @CurrentUser() user: AuthUser,
    @Req() req: Request,
  ): Promise<SuccessDto> {
    await this.backups.remove(body?.name ?? queryName, user, requestMeta(req));
    return { success: true };
  }

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
    return this.recovery.verify(body.name, user, requestMeta(req));
  }

  @Get('download')
  @ApiOperation({
    summary: 'Download a backup (streamed), with its sha256 in X-Checksum-SHA256',
  })
  @ApiQuery({ name: 'name', required: true, example: EXAMPLE_NAME })
  @ApiProduces('application/octet-stream')
  @ApiOkResponse({
    description: 'The backup file',
    schema: { type: 'string', format: 'binary' },
    headers: {
      'X-Checksum-SHA256': { description: 'Hex sha256 of the file', schema: { type: 'string' } },
      'Content-Disposition': { description: 'attachment; filename="<name>"', schema: { type: 'string' } },
    },
  })
  @ApiBadRequestResponse({ description: 'Invalid backup name', type: ErrorResponseDto })
  @ApiNotFoundResponse({ description: 'No such backup', type: ErrorResponseDto })
  async download(
    @Query('name') name: unknown,
    @CurrentUser() user: AuthUser,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ): Promise<StreamableFile> {
    const file = await this.recovery.download(name, user, requestMeta(req));
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Checksum-SHA256', file.sha256);
    // The name passed the backup name rule ([A-Za-z0-9._-] only), so it needs no quoting beyond the quotes.
    return new StreamableFile(file.stream, {
      type: 'application/octet-stream',
      disposition: `attachment; filename="${file.name}"`,
      length: file.size,
    });
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
      'Verifies the backup (checksum, integrity_check, schema), takes a safety backup, copies the backup’s pages ' +
      'into the live database, runs migrations and checks health (an admin must exist); any failure after the ' +
      'safety backup rolls back to it. Meanwhile other mutating requests get 503 with Retry-After.',
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
    const cookie: unknown = req.cookies?.[SESSION_COOKIE];
    return this.recovery.restore(body.name, {
      actor: user,
      meta: requestMeta(req),
      sessionToken: user.via === 'session' && typeof cookie === 'string' ? cookie : undefined,
    });
  }
}
