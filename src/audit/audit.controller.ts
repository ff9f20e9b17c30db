import { Controller, Get, HttpStatus, Query } from '@nestjs/common';
import { ApiBadRequestResponse, ApiOkResponse, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { AdminOnly } from '../auth/decorators';
import { ApiError } from '../common/api-error';
import { ErrorResponseDto } from '../common/error-response.dto';
import { AUDIT_ACTIONS } from './audit-actions';
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
  @ApiBadRequestResponse({
    description: 'A filter or paging value is invalid, or the action is unknown (the body lists the known ones)',
    type: ErrorResponseDto,
  })
  async list(@Query() raw: Record<string, unknown>): Promise<AuditEventsResponseDto> {
    const parsed = parseAuditQuery(raw);
    if (!parsed.ok) {
      throw new ApiError(HttpStatus.BAD_REQUEST, 'Invalid audit query', { details: parsed.errors });
    }
    const action = parsed.query.action;
    if (action !== undefined && !(await this.audit.isKnownAction(action))) {
      throw new ApiError(HttpStatus.BAD_REQUEST, `Unknown action "${action}": use one of ${AUDIT_ACTIONS.join(', ')}`, {
        known_actions: AUDIT_ACTIONS,
      });
    }
    const { events, total } = await this.audit.query(parsed.query);
    return { events, total, limit: parsed.query.limit, offset: parsed.query.offset };
  }
}
