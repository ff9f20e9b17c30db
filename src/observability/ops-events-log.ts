import { Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { Subscription } from 'rxjs';
import { OpsEvent, OpsEvents } from '../common/ops-events';
import { withoutPaths } from './alerts';

/** One structured line per ops event, with its figures as fields (size, duration, MB/s) for log queries. */
export function opsEventFields(event: OpsEvent): Record<string, unknown> {
  switch (event.type) {
    case 'backup_succeeded': {
      const seconds = Math.max(event.durationMs / 1000, 0.001);
      return {
        msg: `Backup ${event.name} succeeded`,
        event: event.type,
        name: event.name,
        kind: event.kind,
        sizeBytes: event.size,
        durationMs: Math.round(event.durationMs),
        mbPerSecond: Number((event.size / 1024 / 1024 / seconds).toFixed(1)),
      };
    }
    case 'backup_failed':
      return {
        msg: 'Backup failed',
        event: event.type,
        kind: event.kind,
        trigger: event.task ?? null,
        reason: event.reason,
      };
    case 'backup_pruned':
      return { msg: `Backup ${event.name} pruned`, event: event.type, name: event.name };
    case 'restore_succeeded':
    case 'drill_succeeded':
      return {
        msg: `${event.type === 'restore_succeeded' ? 'Restore' : 'Restore drill'} of ${event.name} succeeded`,
        event: event.type,
        name: event.name,
        durationMs: Math.round(event.durationMs),
      };
    case 'restore_failed':
      return {
        msg: `Restore of ${event.name} failed`,
        event: event.type,
        name: event.name,
        reason: withoutPaths(event.reason),
        rolledBack: event.rolledBack,
      };
    case 'drill_failed':
      return { msg: 'Restore drill failed', event: event.type, name: event.name, reason: withoutPaths(event.reason) };
    case 'backup_imported':
      return { msg: `Uploaded file kept as ${event.name}`, event: event.type, name: event.name, sizeBytes: event.size };
    case 'offsite_uploaded':
      return {
        msg: `Off-site copy of ${event.name} uploaded`,
        event: event.type,
        name: event.name,
        sizeBytes: event.size,
        durationMs: Math.round(event.durationMs),
      };
    case 'offsite_failed':
      return {
        msg: `Off-site copy of ${event.name} failed`,
        event: event.type,
        name: event.name,
        reason: withoutPaths(event.reason),
        attempts: event.attempts,
      };
  }
}

@Injectable()
export class OpsEventsLog implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('OpsEvents');
  private subscription?: Subscription;

  constructor(private readonly events: OpsEvents) {}

  onModuleInit(): void {
    this.subscription = this.events.subscribe((event) => {
      const fields = opsEventFields(event);
      if (event.type.endsWith('_failed')) {
        this.logger.error(fields);
      } else {
        this.logger.log(fields);
      }
    });
  }

  onModuleDestroy(): void {
    this.subscription?.unsubscribe();
  }
}
