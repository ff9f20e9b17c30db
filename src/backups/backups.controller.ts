import { Body, Controller, Delete, Get, HttpCode, Post, Query, Req, Res, StreamableFile } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBody,
  ApiInternalServerErrorResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiQuery,
  ApiTags,
} from '@nestjs/swagger';
import type { Request, Response } from 'express';
import type { AuthUser } from '../auth/auth-user';
import { AdminOnly, CurrentUser } from '../auth/decorators';
import { ErrorResponseDto } from '../common/error-response.dto';
import { BackupsRateLimit } from '../http/rate-limit';
import { requestMeta } from '../common/request-meta';
import { requireBackupName } from './backup-name.pipe';
import { BackupsService } from './backups.service';
import { BackupListDto, CreateBackupResponseDto, DeleteBackupDto, SuccessDto } from './dto/backup.dto';

const EXAMPLE_NAME = 'mc-backup-2026-01-01_03-00-00.db';

@ApiTags('Backups')
@Controller('backup')
@AdminOnly()
export class BackupsController {
  constructor(private readonly backups: BackupsService) {}

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
    const file = await this.backups.download(requireBackupName(name), user, requestMeta(req));
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Checksum-SHA256', file.sha256);
    // The name passed the backup name rule ([A-Za-z0-9._-] only), so it needs no quoting beyond the quotes.
    return new StreamableFile(file.stream, {
      type: 'application/octet-stream',
      disposition: `attachment; filename="${file.name}"`,
      length: file.size,
    });
  }
}
