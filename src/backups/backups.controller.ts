import { Body, Controller, Delete, Get, HttpCode, Post, Query, Req } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBody,
  ApiInternalServerErrorResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiQuery,
  ApiTags,
} from '@nestjs/swagger';
import type { Request } from 'express';
import type { AuthUser } from '../auth/auth-user';
import { AdminOnly, CurrentUser } from '../auth/decorators';
import { ErrorResponseDto } from '../common/error-response.dto';
import { BackupsRateLimit } from '../common/rate-limit';
import { requestMeta } from '../common/request-meta';
import { BackupsService } from './backups.service';
import { BackupListDto, CreateBackupResponseDto, DeleteBackupDto, SuccessDto } from './dto/backup.dto';

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
}
