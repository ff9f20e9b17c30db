import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { Clock } from '../common/clock';
import { OperationLock } from '../common/operation-lock';
import { SQLITE_HANDLE, type SqliteHandle } from '../database/sqlite-handle';
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

/** Rows held while a restore runs; past this, callers wait for the restore (memory stays bounded, nothing is lost). */
export const MAX_HELD_AUDIT_ROWS = 10_000;
const RETRY_FLUSH_MS = 5_000;

type AuditRow = Omit<AuditEventEntity, 'id'>;

@Injectable()
export class AuditService implements OnApplicationShutdown {
  private readonly logger = new Logger(AuditService.name);
  /** Recorded while a restore held the database, in order; written as soon as it ends. */
  private readonly held: AuditRow[] = [];
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly unsubscribe: () => void;

  constructor(
    @InjectRepository(AuditEventEntity) private readonly events: Repository<AuditEventEntity>,
    private readonly clock: Clock,
    private readonly lock: OperationLock,
    @Inject(SQLITE_HANDLE) private readonly db: SqliteHandle,
  ) {
    this.unsubscribe = this.lock.onFinished(() => this.flushHeld());
  }

  /**
   * Writes one audit row. Never throws: losing an audit row must not turn a done action into an error. While a
   * restore runs (and the caller is not the restore), the row is held in memory with the time it happened and
   * written the moment the restore ends, so a download during a restore neither waits for it nor loses its row.
   */
  async record(entry: AuditRecord): Promise<void> {
    const row: AuditRow = {
      action: entry.action,
      actor: entry.actor.username,
      actorId: entry.actor.id,
      targetType: entry.targetType ?? null,
      targetId: entry.targetId ?? null,
      detail: JSON.stringify(entry.detail ?? {}),
      ipAddress: entry.meta?.ip ?? null,
      userAgent: entry.meta?.userAgent ?? null,
      createdAt: this.clock.nowSeconds(),
    };
    if (this.lock.writesHeld && this.held.length < MAX_HELD_AUDIT_ROWS) {
      this.held.push(row);
      return;
    }
    try {
      // When the restore is running and the hold is full, the write gate keeps this insert waiting for its end.
      await this.events.insert(row);
    } catch (error) {
      this.logger.error(`Could not record audit event ${entry.action}: ${String(error)}`);
    }
  }

  /** How many rows wait for a restore to end. */
  get heldCount(): number {
    return this.held.length;
  }

  onApplicationShutdown(): void {
    this.unsubscribe();
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer);
    }
    this.flushHeld();
    if (this.held.length > 0) {
      const actions = [...new Set(this.held.map((row) => row.action))].join(', ');
      this.logger.error(`${this.held.length} audit event(s) held during a restore were not written: ${actions}`);
    }
  }

  /**
   * One synchronous transaction on the shared connection, run as the restore ends (before anything else can write,
   * see OperationLock.onFinished). When it fails (the database is busy or broken), the rows stay held and it is
   * tried again shortly: they are logged as lost only if the process ends first.
   */
  private flushHeld(): void {
    if (this.held.length === 0 || this.lock.writesHeld) {
      return;
    }
    const rows = this.held.slice();
    try {
      const insert = this.db.prepare(
        'INSERT INTO audit_log (action, actor, actor_id, target_type, target_id, detail, ip_address, user_agent, ' +
          'created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      );
      this.db
        .transaction(() => {
          for (const r of rows) {
            insert.run(
              r.action,
              r.actor,
              r.actorId,
              r.targetType,
              r.targetId,
              r.detail,
              r.ipAddress,
              r.userAgent,
              r.createdAt,
            );
          }
        })
        .immediate();
      this.held.splice(0, rows.length);
    } catch (error) {
      this.logger.error(`Could not yet write ${rows.length} audit event(s) held during a restore: ${String(error)}`);
      this.retryTimer ??= setTimeout(() => {
        this.retryTimer = null;
        this.flushHeld();
      }, RETRY_FLUSH_MS).unref();
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
