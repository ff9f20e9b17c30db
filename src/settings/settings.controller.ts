import { Body, Controller, Get, HttpCode, HttpStatus, Put, Req } from '@nestjs/common';
import { ApiBadRequestResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request } from 'express';
import type { AuthUser } from '../auth/auth-user';
import { AdminOnly, CurrentUser } from '../auth/decorators';
import { ErrorResponseDto } from '../common/error-response.dto';
import { requestMeta } from '../common/request-meta';
import { SettingsResponseDto } from './dto/setting.dto';
import { UpdateSettingsDto, UpdateSettingsResponseDto } from './dto/update-settings.dto';
import { SettingsService } from './settings.service';

@ApiTags('Settings')
@Controller('settings')
@AdminOnly()
export class SettingsController {
  constructor(private readonly settings: SettingsService) {}

  @Get()
  @ApiOperation({ summary: 'List every setting with its current value' })
  @ApiOkResponse({ type: SettingsResponseDto })
  async list(): Promise<SettingsResponseDto> {
    return { settings: await this.settings.list() };
  }

  @Put()
  @HttpCode(HttpStatus.OK)
  @ApiOperation({ summary: 'Change one or more settings; all are stored or none' })
  @ApiOkResponse({ type: UpdateSettingsResponseDto })
  @ApiBadRequestResponse({
    description: 'An unknown key or an invalid value; nothing was stored',
    type: ErrorResponseDto,
  })
  update(
    @Body() body: UpdateSettingsDto,
    @CurrentUser() user: AuthUser,
    @Req() req: Request,
  ): Promise<UpdateSettingsResponseDto> {
    return this.settings.update(body.settings, user, requestMeta(req));
  }
}
