import type { OpsEvent } from '../common/ops-events';

export type AlertEventType = 'backup_failed' | 'restore_failed' | 'drill_failed' | 'offsite_failed';

/** The JSON body POSTed to `general.alert_webhook_url`. */
export interface AlertPayload {
  event: AlertEventType;
  /** Human readable, without paths. */
  message: string;
  /** ISO 8601 UTC, e.g. `2026-01-01T03:00:02.123Z`. */
  at: string;
  /** `manual`, `auto_backup`, `restore`, `restore_drill` or `offsite`. */
  task: string;
  /** The same text as `message`, so Slack- and Mattermost-style incoming webhooks show it as is. */
  text: string;
  service: 'mission-control-backups';
  details: Record<string, string | number | boolean | null>;
}

/** Absolute paths (and file: URLs) in a reason are replaced: an alert leaves the host. */
export function withoutPaths(text: string): string {
  return text
    .replace(/file:\/\/\S+/g, '[path]')
    .replace(/(^|[\s("'=:])(?:[A-Za-z]:)?[\\/][^\s"')]+/g, '$1[path]')
    .slice(0, 300);
}

/** The alert for a failure event, or null for events that are not failures. */
export function alertFor(event: OpsEvent, at: Date): AlertPayload | null {
  const base = { at: at.toISOString(), service: 'mission-control-backups' as const };
  let alert: Pick<AlertPayload, 'event' | 'message' | 'task' | 'details'>;
  switch (event.type) {
    case 'backup_failed': {
      const task = event.kind === 'scheduled' ? 'auto_backup' : event.kind;
      alert = {
        event: event.type,
        task,
        message: `Backup failed (${task === 'auto_backup' ? 'automatic backup' : task}): ${withoutPaths(event.reason)}`,
        details: { kind: event.kind, trigger: event.task ?? null, reason: withoutPaths(event.reason) },
      };
      break;
    }
    case 'restore_failed':
      alert = {
        event: event.type,
        task: 'restore',
        message:
          `Restore of ${event.name} failed: ${withoutPaths(event.reason)}` +
          (event.rolledBack ? '; the live database was rolled back' : ''),
        details: { name: event.name, reason: withoutPaths(event.reason), rolled_back: event.rolledBack },
      };
      break;
    case 'drill_failed':
      alert = {
        event: event.type,
        task: 'restore_drill',
        message: `Restore drill${event.name === null ? '' : ` of ${event.name}`} failed: ${withoutPaths(event.reason)}`,
        details: { name: event.name, reason: withoutPaths(event.reason) },
      };
      break;
    case 'offsite_failed':
      alert = {
        event: event.type,
        task: 'offsite',
        message:
          `Off-site copy of ${event.name} failed (attempt ${event.attempts}): ${withoutPaths(event.reason)}; ` +
          'it will be retried',
        details: { name: event.name, reason: withoutPaths(event.reason), attempts: event.attempts },
      };
      break;
    default:
      return null;
  }
  return { ...alert, ...base, text: alert.message };
}
