import { Controller, Get, HttpStatus, Query } from '@nestjs/common';
import { ApiBadRequestResponse, ApiOkResponse, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { AdminOnly } from '../auth/decorators';
import { ApiError } from '../common/api-error';
import { ErrorResponseDto } from '../common/error-response.dto';
import { parseAuditQuery } from './audit-query';
import { AuditService } from './audit.service';
import { AuditEventsResponseDto } from './dto/audit-events.dto';

@ApiTags('Audit')
@Controller('audit')
@AdminOnly()
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get()
  @ApiOperation({ summary: 'List audit events, newest first' })
  @ApiQuery({ name: 'action', required: false, example: 'backup_create' })
  @ApiQuery({ name: 'actor', required: false, example: 'admin' })
  @ApiQuery({ name: 'since', required: false, description: 'Unix seconds, inclusive' })
  @ApiQuery({ name: 'until', required: false, description: 'Unix seconds, inclusive' })
  @ApiQuery({ name: 'limit', required: false, description: 'default 100, at most 1000' })
  @ApiQuery({ name: 'offset', required: false, description: 'default 0' })
  @ApiOkResponse({ type: AuditEventsResponseDto })
  @ApiBadRequestResponse({ description: 'A filter or paging value is invalid', type: ErrorResponseDto })
  async list(@Query() raw: Record<string, unknown>): Promise<AuditEventsResponseDto> {
    const parsed = parseAuditQuery(raw);
    if (!parsed.ok) {
      throw new ApiError(HttpStatus.BAD_REQUEST, 'Invalid audit query', { details: parsed.errors });
    }
    const { events, total } = await this.audit.query(parsed.query);
    return { events, total, limit: parsed.query.limit, offset: parsed.query.offset };
  }
}
