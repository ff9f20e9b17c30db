export class AuditEventDto {
  id: number;
  /** e.g. backup_create, login_failed, settings_update */
  action: string;
  /** user name, `api-key`, or a system actor such as `scheduler` */
  actor: string;
  actor_id: number | null;
  target_type: string | null;
  target_id: string | null;
  detail: Record<string, unknown>;
  ip_address: string | null;
  user_agent: string | null;
  /** Unix seconds */
  created_at: number;
}

export class AuditEventsResponseDto {
  events: AuditEventDto[];
  total: number;
  limit: number;
  offset: number;
}
