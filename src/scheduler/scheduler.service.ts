import { HttpStatus, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { Cron, SchedulerRegistry } from '@nestjs/schedule';
import { InjectRepository } from '@nestjs/typeorm';
import { CronTime } from 'cron';
import { Subscription } from 'rxjs';
import { Repository } from 'typeorm';
import { AuditActor, AuditService, SYSTEM_ACTORS } from '../audit/audit.service';
import { BackupsService } from '../backups/backups.service';
import { ApiError } from '../common/api-error';
import { Clock } from '../common/clock';
import type { RequestMeta } from '../common/request-meta';
import { SettingsService } from '../settings/settings.service';
import { SchedulerTaskDto, TriggerResultDto } from './dto/scheduler.dto';
import { AUTO_BACKUP_TASK, DEFAULT_BACKUP_CRON, SCHEDULE_TIME_ZONE, shouldCatchUp } from './schedule-timing';
import { SchedulerTaskEntity } from './scheduler-task.entity';

type RunSource = 'cron' | 'catch_up' | 'trigger';

@Injectable()
export class SchedulerService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(SchedulerService.name);
  private inFlight = 0;
  private settingsSubscription?: Subscription;
  /** The start-up catch-up run (resolved at once when none is due); tests and shutdown can await it. */
  startupCatchUp: Promise<void> = Promise.resolve();

  constructor(
    @InjectRepository(SchedulerTaskEntity) private readonly tasks: Repository<SchedulerTaskEntity>,
    private readonly backups: BackupsService,
    private readonly settings: SettingsService,
    private readonly audit: AuditService,
    private readonly registry: SchedulerRegistry,
    private readonly clock: Clock,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.applySchedule();
    // general.backup_cron re-times the job at once, no restart needed.
    this.settingsSubscription = this.settings.changes$.subscribe((change) => {
      if (change.key === 'general.backup_cron') {
        this.retime(change.newValue);
      }
    });
    const state = await this.state(AUTO_BACKUP_TASK);
    if (state.running) {
      // The process died mid-run: say so instead of showing "running" forever.
      await this.tasks.save({
        ...state,
        running: false,
        lastResultOk: false,
        lastResultMessage: 'Interrupted by a restart',
        lastResultAt: this.clock.nowMs(),
      });
    }
    const enabled = await this.settings.getBoolean('general.auto_backup');
    if (shouldCatchUp({ enabled, lastSuccessAt: state.lastSuccessAt, nowMs: this.clock.nowMs() })) {
      this.logger.warn('The last successful automatic backup is over a day old: catching up now');
      // In the background: start-up (and the health check) must not wait for a large copy.
      this.startupCatchUp = this.runAutoBackup('catch_up').then(() => undefined);
    }
  }

  onModuleDestroy(): void {
    this.settingsSubscription?.unsubscribe();
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
  @Cron(DEFAULT_BACKUP_CRON, { name: AUTO_BACKUP_TASK, timeZone: SCHEDULE_TIME_ZONE })
  async onSchedule(): Promise<void> {
    if (!(await this.settings.getBoolean('general.auto_backup'))) {
      this.logger.debug('Automatic backup is off (general.auto_backup): nothing to do');
      return;
    }
    await this.runAutoBackup('cron');
  }

  /** POST /api/scheduler: run the task now, as the admin, whatever the setting. */
  async trigger(taskId: string, actor: AuditActor, meta: RequestMeta): Promise<TriggerResultDto> {
    if (taskId !== AUTO_BACKUP_TASK) {
      throw new ApiError(HttpStatus.BAD_REQUEST, 'Unknown task_id');
    }
    const result = await this.runAutoBackup('trigger', actor, meta);
    if (!result.ok) {
      throw new ApiError(HttpStatus.INTERNAL_SERVER_ERROR, result.message, { ok: false, message: result.message });
    }
    return result;
  }

  async list(): Promise<SchedulerTaskDto[]> {
    const state = await this.state(AUTO_BACKUP_TASK);
    return [
      {
        id: AUTO_BACKUP_TASK,
        name: 'Automatic backup',
        enabled: await this.settings.getBoolean('general.auto_backup'),
        lastRun: state.lastRun,
        nextRun: this.nextRun(AUTO_BACKUP_TASK),
        running: state.running,
        lastResult:
          state.lastResultOk === null
            ? null
            : { ok: state.lastResultOk, message: state.lastResultMessage ?? '', timestamp: state.lastResultAt ?? 0 },
      },
    ];
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
    await this.tasks.save({ ...(await this.state(AUTO_BACKUP_TASK)), lastRun: this.clock.nowMs(), running: true });
    let result: TriggerResultDto;
    try {
      const backup = await this.backups.create({ actor: runBy, kind: 'scheduled', meta, trigger: source });
      result = { ok: true, message: `Backup ${backup.name} created (${backup.size} bytes)` };
    } catch (error) {
      if (!(error instanceof ApiError)) {
        this.logger.error(`Automatic backup failed: ${error instanceof Error ? error.stack : String(error)}`);
      }
      result = { ok: false, message: 'Backup failed' };
    } finally {
      this.inFlight--;
    }
    const now = this.clock.nowMs();
    const state = await this.state(AUTO_BACKUP_TASK);
    await this.tasks.save({
      ...state,
      running: this.inFlight > 0,
      lastResultOk: result.ok,
      lastResultMessage: result.message,
      lastResultAt: now,
      lastSuccessAt: result.ok ? now : state.lastSuccessAt,
    });
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
