import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { Clock } from '../common/clock';
import type { RequestMeta } from '../common/request-meta';
import type { AuthUser } from '../auth/auth-user';
import { AUDIT_ACTIONS } from './audit-actions';
import { AuditEventEntity } from './audit-event.entity';
import type { AuditEventDto } from './dto/audit-events.dto';
import type { AuditQuery } from './audit-query';

/** Who did it: a signed-in user, or a named system actor such as `scheduler`. */
export type AuditActor = Pick<AuthUser, 'id' | 'username'> | { id: null; username: string };

export interface AuditRecord {
  action: string;
  actor: AuditActor;
  targetType?: string;
  targetId?: string;
  detail?: Record<string, unknown>;
  meta?: Partial<RequestMeta>;
}

/** The API's shape of an event (snake_case, `detail` parsed). */
export type AuditEventView = AuditEventDto;

export const SYSTEM_ACTORS = {
  scheduler: { id: null, username: 'scheduler' },
  system: { id: null, username: 'system' },
} as const;

@Injectable()
export class AuditService {
  private readonly logger = new Logger(AuditService.name);

  constructor(
    @InjectRepository(AuditEventEntity) private readonly events: Repository<AuditEventEntity>,
    private readonly clock: Clock,
  ) {}

  /** Writes one audit row. Never throws: losing an audit row must not turn a done action into an error. */
  async record(entry: AuditRecord): Promise<void> {
    try {
      await this.events.insert({
        action: entry.action,
        actor: entry.actor.username,
        actorId: entry.actor.id,
        targetType: entry.targetType ?? null,
        targetId: entry.targetId ?? null,
        detail: JSON.stringify(entry.detail ?? {}),
        ipAddress: entry.meta?.ip ?? null,
        userAgent: entry.meta?.userAgent ?? null,
        createdAt: this.clock.nowSeconds(),
      });
    } catch (error) {
      this.logger.error(`Could not record audit event ${entry.action}: ${String(error)}`);
    }
  }

  /** Listed in AUDIT_ACTIONS, or present in the trail (an action recorded by another version of the service). */
  async isKnownAction(action: string): Promise<boolean> {
    if ((AUDIT_ACTIONS as readonly string[]).includes(action)) {
      return true;
    }
    return (await this.events.count({ where: { action }, take: 1 })) > 0;
  }

  /** Whether `action` was ever recorded for `targetId`: for findings that are audited once, not on every pass. */
  async hasEvent(action: string, targetId: string): Promise<boolean> {
    return (await this.events.count({ where: { action, targetId }, take: 1 })) > 0;
  }

  async query(query: AuditQuery): Promise<{ events: AuditEventView[]; total: number }> {
    const builder = this.events.createQueryBuilder('event');
    if (query.action !== undefined) {
      builder.andWhere('event.action = :action', { action: query.action });
    }
    if (query.actor !== undefined) {
      builder.andWhere('event.actor = :actor', { actor: query.actor });
    }
    if (query.since !== undefined) {
      builder.andWhere('event.created_at >= :since', { since: query.since });
    }
    if (query.until !== undefined) {
      builder.andWhere('event.created_at <= :until', { until: query.until });
    }
    const [rows, total] = await builder
      .orderBy('event.created_at', 'DESC')
      .addOrderBy('event.id', 'DESC')
      .limit(query.limit)
      .offset(query.offset)
      .getManyAndCount();
    return { events: rows.map(toView), total };
  }
}

function toView(row: AuditEventEntity): AuditEventView {
  let detail: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(row.detail);
    detail = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : { value: parsed };
  } catch {
    detail = {};
  }
  return {
    id: row.id,
    action: row.action,
    actor: row.actor,
    actor_id: row.actorId,
    target_type: row.targetType,
    target_id: row.targetId,
    detail,
    ip_address: row.ipAddress,
    user_agent: row.userAgent,
    created_at: row.createdAt,
  };
}
