import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  OnModuleDestroy,
  OnModuleInit,
  Optional,
} from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { Subscription } from 'rxjs';
import { AuditService, SYSTEM_ACTORS } from '../audit/audit.service';
import { Clock } from '../common/clock';
import { OpsEvent, OpsEvents } from '../common/ops-events';
import { SettingsService } from '../settings/settings.service';
import { alertFor, AlertPayload } from './alerts';
import {
  AlertDeliveryOptions,
  DEFAULT_ALERT_DELIVERY,
  OBSERVABILITY_OPTIONS,
  ObservabilityOptions,
} from './observability-options';

export const ALERT_SENT = 'alert_sent';
export const ALERT_FAILED = 'alert_failed';
/** How long shutdown waits for alerts still being delivered before cancelling them. */
const SHUTDOWN_GRACE_MS = 5_000;

/**
 * Failure alerts: when a backup, restore or drill fails, POSTs an {@link AlertPayload} to
 * `general.alert_webhook_url` (empty = off), each try bounded by a timeout, retried with back-off, then audits
 * `alert_sent` or `alert_failed`. Fire-and-forget: the listener returns at once, so the failing operation never
 * waits for the webhook. The URL is never logged or audited whole (it often holds a secret): only its host.
 */
@Injectable()
export class AlertsService implements OnModuleInit, OnModuleDestroy, BeforeApplicationShutdown {
  private readonly logger = new Logger(AlertsService.name);
  private readonly delivery: AlertDeliveryOptions;
  private readonly pending = new Set<Promise<void>>();
  private readonly stopping = new AbortController();
  private subscription?: Subscription;

  constructor(
    private readonly events: OpsEvents,
    private readonly settings: SettingsService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    @Optional() @Inject(OBSERVABILITY_OPTIONS) options?: ObservabilityOptions,
  ) {
    this.delivery = { ...DEFAULT_ALERT_DELIVERY, ...options?.alertDelivery };
  }

  onModuleInit(): void {
    this.subscription = this.events.subscribe((event) => this.notify(event));
  }

  onModuleDestroy(): void {
    this.subscription?.unsubscribe();
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.pending.size > 0) {
      await Promise.race([Promise.allSettled([...this.pending]), sleep(SHUTDOWN_GRACE_MS, undefined, { ref: false })]);
    }
    this.stopping.abort();
  }

  /** Starts delivery of the alert for a failure event in the background; other events are ignored. */
  notify(event: OpsEvent): void {
    const payload = alertFor(event, this.clock.now());
    if (payload === null) {
      return;
    }
    const delivery: Promise<void> = this.deliver(payload)
      .catch((error: unknown) => this.logger.error(`Alert delivery crashed: ${String(error)}`))
      .finally(() => this.pending.delete(delivery));
    this.pending.add(delivery);
  }

  /** Resolves when the alert was delivered, given up on, or not configured. Never throws. */
  async deliver(payload: AlertPayload): Promise<void> {
    const url = await this.settings.getString('general.alert_webhook_url');
    if (url === '') {
      return;
    }
    let target: string;
    try {
      const parsed = new URL(url);
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
        throw new Error('not http(s)');
      }
      target = parsed.host;
    } catch {
      this.logger.warn('general.alert_webhook_url is not an http(s) URL: alert not sent');
      return;
    }

    const body = JSON.stringify(payload);
    const tries = this.delivery.backoffMs.length + 1;
    let problem = 'not attempted';
    let attempts = 0;
    for (let attempt = 1; attempt <= tries && !this.stopping.signal.aborted; attempt++) {
      if (attempt > 1) {
        try {
          await sleep(this.delivery.backoffMs[attempt - 2], undefined, { signal: this.stopping.signal });
        } catch {
          break; // shutting down
        }
      }
      attempts = attempt;
      const outcome = await this.post(url, body);
      if (outcome.ok) {
        this.logger.log(`Alert ${payload.event} sent to ${target} (attempt ${attempt}/${tries})`);
        await this.audit.record({
          action: ALERT_SENT,
          actor: SYSTEM_ACTORS.system,
          targetType: 'alert',
          targetId: payload.event,
          detail: { event: payload.event, task: payload.task, target, attempts: attempt, status: outcome.status },
        });
        return;
      }
      problem = outcome.problem;
      this.logger.warn(`Alert ${payload.event} to ${target}: attempt ${attempt}/${tries} failed (${problem})`);
    }
    this.logger.error(`Alert ${payload.event} to ${target} failed after ${attempts} attempt(s): ${problem}`);
    await this.audit.record({
      action: ALERT_FAILED,
      actor: SYSTEM_ACTORS.system,
      targetType: 'alert',
      targetId: payload.event,
      detail: { event: payload.event, task: payload.task, target, attempts, problem },
    });
  }

  private async post(
    url: string,
    body: string,
  ): Promise<{ ok: true; status: number } | { ok: false; problem: string }> {
    // A controller and timer we hold ourselves, not AbortSignal.any([AbortSignal.timeout(), ...]): on Node 20 the
    // composite is only weakly held by its sources, so after a garbage collection it never aborts and a receiver
    // that never answers kept a try open for ever (seen in CI; reproduced with --expose-gc: the composite hung
    // past 3 s, this controller aborted at 300 ms every time).
    const attempt = new AbortController();
    const onStopping = (): void => attempt.abort(this.stopping.signal.reason);
    this.stopping.signal.addEventListener('abort', onStopping, { once: true });
    const timer = setTimeout(
      () => attempt.abort(new DOMException(`no answer within ${this.delivery.timeoutMs} ms`, 'TimeoutError')),
      this.delivery.timeoutMs,
    );
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'User-Agent': 'mission-control-backups' },
        body,
        redirect: 'manual',
        signal: attempt.signal,
      });
      await response.body?.cancel().catch(() => undefined);
      return response.ok ? { ok: true, status: response.status } : { ok: false, problem: `HTTP ${response.status}` };
    } catch (error) {
      return { ok: false, problem: this.describe(attempt.signal.aborted ? attempt.signal.reason : error) };
    } finally {
      clearTimeout(timer);
      this.stopping.signal.removeEventListener('abort', onStopping);
    }
  }

  /** An error code or class, never the message (undici's may quote the URL). */
  private describe(error: unknown): string {
    // Duck-typed: fetch rejects with a DOMException on timeout/abort, from another realm under Jest.
    const rawName = (error as { name?: unknown } | null)?.name;
    const name = typeof rawName === 'string' ? rawName : 'Error';
    if (name === 'TimeoutError') {
      return `no answer within ${this.delivery.timeoutMs} ms`;
    }
    if (name === 'AbortError') {
      return 'cancelled by shutdown';
    }
    const cause = (error as { cause?: { code?: unknown } } | null)?.cause;
    return typeof cause?.code === 'string' ? cause.code : name;
  }
}
