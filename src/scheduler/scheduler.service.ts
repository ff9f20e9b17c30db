import { HttpStatus, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { Cron, SchedulerRegistry } from '@nestjs/schedule';
import { InjectRepository } from '@nestjs/typeorm';
import { CronTime } from 'cron';
import { Subscription } from 'rxjs';
import { Repository } from 'typeorm';
import { AuditActor, AuditService, SYSTEM_ACTORS } from '../audit/audit.service';
import { BackupsService } from '../backups/backups.service';
import { RecoveryService } from '../recovery/recovery.service';
import { RestoreService } from '../recovery/restore.service';
import { ApiError, InputError } from '../common/api-error';
import { Clock } from '../common/clock';
import type { RequestMeta } from '../common/request-meta';
import { SettingsService } from '../settings/settings.service';
import { SchedulerTaskDto, TriggerResultDto } from './dto/scheduler.dto';
import {
  AUTO_BACKUP_TASK,
  DEFAULT_BACKUP_CRON,
  RESTORE_DRILL_CRON,
  RESTORE_DRILL_TASK,
  SCHEDULE_TIME_ZONE,
  shouldCatchUp,
} from './schedule-timing';
import { SchedulerTaskEntity } from './scheduler-task.entity';

type RunSource = 'cron' | 'catch_up' | 'trigger';

@Injectable()
export class SchedulerService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(SchedulerService.name);
  private inFlight = 0;
  private drillsInFlight = 0;
  private settingsSubscription?: Subscription;
  private restoredSubscription?: Subscription;
  /** The start-up catch-up run (resolved at once when none is due); tests and shutdown can await it. */
  startupCatchUp: Promise<void> = Promise.resolve();

  constructor(
    @InjectRepository(SchedulerTaskEntity) private readonly tasks: Repository<SchedulerTaskEntity>,
    private readonly backups: BackupsService,
    private readonly settings: SettingsService,
    private readonly audit: AuditService,
    private readonly registry: SchedulerRegistry,
    private readonly clock: Clock,
    private readonly recovery: RecoveryService,
    private readonly restores: RestoreService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    try {
      await this.bootstrap();
    } catch (error) {
      // A damaged live schema must not stop start-up: health reports it, and a restore brings the tables back.
      this.logger.error(`Scheduler start-up failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private async bootstrap(): Promise<void> {
    // general.backup_cron re-times the job at once, no restart needed.
    this.settingsSubscription = this.settings.changes$.subscribe((change) => {
      if (change.key === 'general.backup_cron') {
        this.retime(change.newValue);
      }
    });
    // A restore replaces the settings along with everything else: take the schedule from the restored data.
    this.restoredSubscription = this.restores.restored$.subscribe(() => {
      this.applySchedule().catch((error: unknown) =>
        this.logger.error(`Could not re-apply the schedule after a restore: ${String(error)}`),
      );
    });
    // After the subscriptions: should the live tables be damaged, a restore still re-applies the schedule.
    await this.applySchedule();
    for (const id of [AUTO_BACKUP_TASK, RESTORE_DRILL_TASK]) {
      const stale = await this.state(id);
      if (stale.running) {
        // The process died mid-run: say so instead of showing "running" forever.
        await this.tasks.save(
          {
            ...stale,
            running: false,
            lastResultOk: false,
            lastResultMessage: 'Interrupted by a restart',
            lastResultAt: this.clock.nowMs(),
          },
          { transaction: false },
        );
      }
    }
    const state = await this.state(AUTO_BACKUP_TASK);
    const enabled = await this.settings.getBoolean('general.auto_backup');
    if (shouldCatchUp({ enabled, lastSuccessAt: state.lastSuccessAt, nowMs: this.clock.nowMs() })) {
      this.logger.warn('The last successful automatic backup is over a day old: catching up now');
      // In the background: start-up (and the health check) must not wait for a large copy.
      this.startupCatchUp = this.runAutoBackup('catch_up').then(() => undefined);
    }
  }

  onModuleDestroy(): void {
    this.settingsSubscription?.unsubscribe();
    this.restoredSubscription?.unsubscribe();
  }

  /** Times the auto-backup job from the stored general.backup_cron (also after a restore replaced the settings). */
  async applySchedule(): Promise<void> {
    this.retime(await this.settings.getString('general.backup_cron'));
  }

  private retime(expression: string): void {
    const job = this.registry.getCronJob(AUTO_BACKUP_TASK);
    if (job.cronTime.source === expression) {
      return;
    }
    job.setTime(new CronTime(expression, SCHEDULE_TIME_ZONE));
    this.logger.log(`Automatic backup schedule is now "${expression}" (UTC); next run ${job.nextDate().toISO()}`);
  }

  /**
   * The automatic backup: 03:00 UTC by default, re-timed by general.backup_cron. It makes a backup only when
   * general.auto_backup is on.
   */
  // waitForCompletion: a tick never starts while the previous one of the same job still runs, and fireOnTick()
  // resolves only when the handler is done (what a test awaiting it relies on).
  @Cron(DEFAULT_BACKUP_CRON, { name: AUTO_BACKUP_TASK, timeZone: SCHEDULE_TIME_ZONE, waitForCompletion: true })
  async onSchedule(): Promise<void> {
    if (!(await this.settings.getBoolean('general.auto_backup'))) {
      this.logger.debug('Automatic backup is off (general.auto_backup): nothing to do');
      return;
    }
    await this.runAutoBackup('cron');
  }

  /**
   * The restore drill: Sundays 04:00 UTC, when general.restore_drill is on (the default). Restores the newest
   * backup into a scratch file and checks it (see RecoveryService.drill).
   */
  @Cron(RESTORE_DRILL_CRON, { name: RESTORE_DRILL_TASK, timeZone: SCHEDULE_TIME_ZONE, waitForCompletion: true })
  async onDrillSchedule(): Promise<void> {
    if (!(await this.settings.getBoolean('general.restore_drill'))) {
      this.logger.debug('The restore drill is off (general.restore_drill): nothing to do');
      return;
    }
    await this.runDrill('cron');
  }

  /** POST /api/scheduler: run the task now, as the admin, whatever the setting. */
  async trigger(taskId: string, actor: AuditActor, meta: RequestMeta): Promise<TriggerResultDto> {
    if (taskId !== AUTO_BACKUP_TASK && taskId !== RESTORE_DRILL_TASK) {
      throw new InputError('Unknown task_id');
    }
    const result =
      taskId === RESTORE_DRILL_TASK
        ? await this.runDrill('trigger', actor, meta)
        : await this.runAutoBackup('trigger', actor, meta);
    if (!result.ok) {
      throw new ApiError(HttpStatus.INTERNAL_SERVER_ERROR, result.message, { ok: false, message: result.message });
    }
    return result;
  }

  async list(): Promise<SchedulerTaskDto[]> {
    const autoBackup = await this.settings.getBoolean('general.auto_backup');
    const drill = await this.settings.getBoolean('general.restore_drill');
    return [
      await this.view(AUTO_BACKUP_TASK, 'Automatic backup', autoBackup),
      await this.view(RESTORE_DRILL_TASK, 'Restore drill', drill),
    ];
  }

  private async view(id: string, name: string, enabled: boolean): Promise<SchedulerTaskDto> {
    const state = await this.state(id);
    return {
      id,
      name,
      enabled,
      lastRun: state.lastRun,
      nextRun: this.nextRun(id),
      running: state.running,
      lastResult:
        state.lastResultOk === null
          ? null
          : { ok: state.lastResultOk, message: state.lastResultMessage ?? '', timestamp: state.lastResultAt ?? 0 },
    };
  }

  /** One drill, its state in scheduler_tasks, and the `restore_drill` audit row (a failure is logged as an error). */
  private async runDrill(source: RunSource, actor?: AuditActor, meta?: RequestMeta): Promise<TriggerResultDto> {
    const runBy = actor ?? SYSTEM_ACTORS.scheduler;
    this.drillsInFlight++;
    await this.tasks.save(
      { ...(await this.state(RESTORE_DRILL_TASK)), lastRun: this.clock.nowMs(), running: true },
      { transaction: false },
    );
    let outcome: { ok: boolean; message: string; name: string | null };
    try {
      outcome = await this.recovery.drill();
    } finally {
      this.drillsInFlight--;
    }
    await this.recordResult(RESTORE_DRILL_TASK, this.drillsInFlight > 0, outcome);
    await this.audit.record({
      action: RESTORE_DRILL_TASK,
      actor: runBy,
      targetType: 'task',
      targetId: RESTORE_DRILL_TASK,
      detail: { source, ok: outcome.ok, message: outcome.message, name: outcome.name },
      meta,
    });
    if (!outcome.ok) {
      this.logger.error(`Task ${RESTORE_DRILL_TASK} (${source}) failed: ${outcome.message}`);
    }
    return { ok: outcome.ok, message: outcome.message };
  }

  /** A run's outcome in the task's stored state (it survives restarts); the last success only moves on success. */
  private async recordResult(
    taskId: string,
    stillRunning: boolean,
    outcome: { ok: boolean; message: string },
  ): Promise<void> {
    const now = this.clock.nowMs();
    const state = await this.state(taskId);
    await this.tasks.save(
      {
        ...state,
        running: stillRunning,
        lastResultOk: outcome.ok,
        lastResultMessage: outcome.message,
        lastResultAt: now,
        lastSuccessAt: outcome.ok ? now : state.lastSuccessAt,
      },
      { transaction: false },
    );
  }

  private nextRun(taskId: string): number | null {
    try {
      return this.registry.getCronJob(taskId).nextDate().toMillis();
    } catch {
      return null;
    }
  }

  private async runAutoBackup(source: RunSource, actor?: AuditActor, meta?: RequestMeta): Promise<TriggerResultDto> {
    const runBy = actor ?? SYSTEM_ACTORS.scheduler;
    this.inFlight++;
    await this.tasks.save(
      { ...(await this.state(AUTO_BACKUP_TASK)), lastRun: this.clock.nowMs(), running: true },
      { transaction: false },
    );
    let result: TriggerResultDto;
    try {
      const backup = await this.backups.create({ actor: runBy, kind: 'scheduled', meta, trigger: source });
      result = { ok: true, message: `Backup ${backup.name} created (${backup.size} bytes)` };
    } catch (error) {
      if (!(error instanceof ApiError)) {
        this.logger.error(`Automatic backup failed: ${error instanceof Error ? error.stack : String(error)}`);
      }
      const reason = error instanceof ApiError ? (error.getResponse() as { message?: unknown }).message : undefined;
      result = { ok: false, message: typeof reason === 'string' ? `Backup failed: ${reason}` : 'Backup failed' };
    } finally {
      this.inFlight--;
    }
    await this.recordResult(AUTO_BACKUP_TASK, this.inFlight > 0, result);
    if (source !== 'trigger') {
      await this.audit.record({
        action: AUTO_BACKUP_TASK,
        actor: SYSTEM_ACTORS.scheduler,
        targetType: 'task',
        targetId: AUTO_BACKUP_TASK,
        detail: { source, ok: result.ok, message: result.message },
      });
    }
    if (!result.ok) {
      this.logger.error(`Task ${AUTO_BACKUP_TASK} (${source}) failed`);
    }
    return result;
  }

  private async state(id: string): Promise<SchedulerTaskEntity> {
    return (
      (await this.tasks.findOneBy({ id })) ??
      this.tasks.create({
        id,
        lastRun: null,
        lastSuccessAt: null,
        lastResultOk: null,
        lastResultMessage: null,
        lastResultAt: null,
        running: false,
      })
    );
  }
}
