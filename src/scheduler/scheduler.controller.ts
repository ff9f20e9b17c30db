import { Body, Controller, Get, HttpCode, Post, Req } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiInternalServerErrorResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import type { Request } from 'express';
import type { AuthUser } from '../auth/auth-user';
import { AdminOnly, CurrentUser } from '../auth/decorators';
import { ErrorResponseDto } from '../common/error-response.dto';
import { BackupsRateLimit } from '../http/rate-limit';
import { requestMeta } from '../common/request-meta';
import { SchedulerTasksDto, TriggerFailureDto, TriggerResultDto, TriggerTaskDto } from './dto/scheduler.dto';
import { SchedulerService } from './scheduler.service';

@ApiTags('Scheduler')
@Controller('scheduler')
@AdminOnly()
export class SchedulerController {
  constructor(private readonly scheduler: SchedulerService) {}

  @Get()
  @ApiOperation({ summary: 'Scheduled tasks: enabled, last run and result, next run' })
  @ApiOkResponse({ type: SchedulerTasksDto })
  async list(): Promise<SchedulerTasksDto> {
    return { tasks: await this.scheduler.list() };
  }

  @Post()
  @HttpCode(200)
  @BackupsRateLimit()
  @ApiOperation({ summary: 'Run a scheduled task now; answers after the backup is made' })
  @ApiOkResponse({ type: TriggerResultDto })
  @ApiBadRequestResponse({ description: 'Unknown or missing task_id', type: ErrorResponseDto })
  @ApiInternalServerErrorResponse({ description: 'The backup failed', type: TriggerFailureDto })
  trigger(@Body() body: TriggerTaskDto, @CurrentUser() user: AuthUser, @Req() req: Request): Promise<TriggerResultDto> {
    return this.scheduler.trigger(body.task_id, user, requestMeta(req));
  }
}
