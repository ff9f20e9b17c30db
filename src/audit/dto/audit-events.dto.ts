import { ApiProperty } from '@nestjs/swagger';

export class AuditEventDto {
  /** @example 42 */
  id: number;
  /** e.g. backup_create, login_failed, settings_update */
  @ApiProperty({ example: 'backup_create' })
  action: string;
  /** user name, `api-key`, or a system actor such as `scheduler` */
  @ApiProperty({ example: 'admin' })
  actor: string;
  /** @example 1 */
  actor_id: number | null;
  /** @example backup */
  target_type: string | null;
  /** @example mc-backup-2026-01-01_03-00-00.db */
  target_id: string | null;
  @ApiProperty({ example: { name: 'mc-backup-2026-01-01_03-00-00.db', size: 4096000, kind: 'manual' } })
  detail: Record<string, unknown>;
  /** @example 192.0.2.10 */
  ip_address: string | null;
  @ApiProperty({ type: String, nullable: true, example: 'curl/8.5.0' })
  user_agent: string | null;
  /** Unix seconds @example 1767236400 */
  created_at: number;
}

export class AuditEventsResponseDto {
  events: AuditEventDto[];
  /** Events matching the filters, before paging. @example 1 */
  total: number;
  /** @example 100 */
  limit: number;
  /** @example 0 */
  offset: number;
}
