import { Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { Subject, Subscription } from 'rxjs';

/** What happened to a backup, restore or drill: metrics, alerts and logs listen here instead of being called. */
export type OpsEvent =
  | { type: 'backup_succeeded'; name: string; size: number; durationMs: number; kind: string }
  | { type: 'backup_failed'; kind: string; reason: string; task?: string }
  | { type: 'backup_pruned'; name: string }
  | { type: 'restore_succeeded'; name: string; durationMs: number }
  | { type: 'restore_failed'; name: string; reason: string; rolledBack: boolean }
  | { type: 'drill_succeeded'; name: string; durationMs: number }
  | { type: 'drill_failed'; name: string | null; reason: string }
  /** A file accepted by POST /api/backup/upload and published as mc-upload-….db (not a backup this service made). */
  | { type: 'backup_imported'; name: string; size: number }
  | { type: 'offsite_uploaded'; name: string; size: number; durationMs: number }
  | { type: 'offsite_failed'; name: string; reason: string; attempts: number };

@Injectable()
export class OpsEvents implements OnModuleDestroy {
  private readonly logger = new Logger(OpsEvents.name);
  private readonly events = new Subject<OpsEvent>();

  emit(event: OpsEvent): void {
    this.events.next(event);
  }

  /** A listener that throws is logged and kept: an alert bug must never break the backup that emitted. */
  subscribe(listener: (event: OpsEvent) => void | Promise<void>): Subscription {
    return this.events.subscribe((event) => {
      try {
        const result = listener(event);
        if (result instanceof Promise) {
          result.catch((error: unknown) => this.logger.error(`Listener failed on ${event.type}: ${String(error)}`));
        }
      } catch (error) {
        this.logger.error(`Listener failed on ${event.type}: ${String(error)}`);
      }
    });
  }

  onModuleDestroy(): void {
    this.events.complete();
  }
}
