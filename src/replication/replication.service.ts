import { HttpStatus, Inject, Injectable, Logger, OnModuleDestroy, Optional } from '@nestjs/common';
import * as path from 'node:path';
import { AuditService, SYSTEM_ACTORS, type AuditActor } from '../audit/audit.service';
import { runSnapshotWorker } from '../sqlite/snapshot';
import { ApiError } from '../common/api-error';
import { Clock } from '../common/clock';
import type { RequestMeta } from '../common/request-meta';
import { AppConfig } from '../config/app-config';
import { AgeCrypto } from '../offsite/age-crypto';
import { OffsiteBucket } from '../offsite/offsite-bucket';
import { SettingsService } from '../settings/settings.service';
import type { ReplicationSnapshotDto, ReplicationStatusDto } from './dto/replication.dto';
import { Compactor } from './compactor';
import { rebuildAt, type RebuildOptions, type RebuildResult } from './replica-rebuild';
import { readWindow, type ReplicaWindow } from './replica-window';
import { ReplicaStore } from './replica-store';
import { ReplicationProgress } from './replication-progress';
import { RoundScheduler } from './round-scheduler';
import { Shipper } from './shipper';

export const REPLICA_STORE = Symbol('REPLICA_STORE');
export const REPLICATION_OFF = 'Continuous replication is off (it needs off-site storage and REPLICATION not off)';
/** How often snapshot age and retention are looked at (never a bucket request more often than this). */
const MAINTENANCE_EVERY_MS = 10 * 60 * 1000;
/** The window is read from the bucket at most this often for GET /api/backup/replication. */
const WINDOW_CACHE_MS = 30_000;

/**
 * Continuous replication in the service: runs the Shipper every REPLICATION_SYNC_INTERVAL_MS, audits each new
 * generation, takes a scheduled snapshot every general.replication_snapshot_hours and deletes generations older than
 * general.replication_retention_hours (never the one serving now). Also the API the restore path uses:
 * {@link rebuildAt}, {@link window} and {@link startNewGeneration}.
 */
@Injectable()
export class ReplicationService implements OnModuleDestroy {
  private readonly logger = new Logger(ReplicationService.name);
  private shipper: Shipper | null = null;
  private compactor: Compactor | null = null;
  private scheduler: RoundScheduler | null = null;
  private rounds: Promise<boolean> | null = null;
  private generationStartedMs = 0;
  private lastMaintenanceMs = 0;
  private cachedWindow: { at: number; window: ReplicaWindow } | null = null;

  constructor(
    private readonly config: AppConfig,
    private readonly audit: AuditService,
    private readonly settings: SettingsService,
    private readonly clock: Clock,
    private readonly progress: ReplicationProgress,
    @Optional() @Inject(REPLICA_STORE) private readonly store: ReplicaStore | null,
  ) {}

  get enabled(): boolean {
    return this.config.replication && this.store !== null;
  }

  /** Starts streaming (the service only, never a CLI command). */
  start(): void {
    if (!this.enabled || this.shipper !== null) {
      return;
    }
    this.shipper = new Shipper({
      dbPath: this.config.dbPath,
      spoolDir: path.join(path.dirname(this.config.dbPath), 'replication'),
      store: this.store!,
      now: () => this.clock.nowMs(),
      snapshot: async (dest) => {
        await runSnapshotWorker(this.config.dbPath, dest, { hash: false });
      },
      onGeneration: (generation, reason) => this.generationStarted(generation, reason),
      log: (level, message) => this.logger[level](message),
    });
    this.shipper.start();
    this.compactor = new Compactor(this.store!, (level, message) => this.logger[level](message));
    this.progress.attach(() => this.progressView());
    const shipper = this.shipper;
    this.scheduler = new RoundScheduler({
      intervalMs: this.config.replicationSyncIntervalMs,
      now: () => Date.now(),
      walStamp: () => shipper.walStamp(),
      run: () => this.tick(),
    });
    this.scheduler.start();
  }

  private tick(): Promise<boolean> {
    if (this.rounds !== null || this.shipper === null) {
      return Promise.resolve(false);
    }
    const round = this.runRound().finally(() => {
      if (this.rounds === round) {
        this.rounds = null;
      }
    });
    this.rounds = round;
    return round;
  }

  private async runRound(): Promise<boolean> {
    const shipper = this.shipper;
    if (shipper === null) {
      return false;
    }
    try {
      const shipped = await shipper.round();
      this.compactor?.poke(shipper.uploader.lastStoredSegment);
      await this.maintain();
      return shipped;
    } catch (error) {
      shipper.failures++;
      shipper.lastError = error instanceof Error ? error.message : String(error);
      this.logger.error(`Replication round failed: ${shipper.lastError}`);
      return false;
    }
  }

  /** One round now (tests and the benchmark drive the shipper with this instead of waiting for the timer). */
  async syncNow(): Promise<void> {
    while (this.rounds !== null) {
      await this.rounds;
    }
    if (this.shipper !== null) {
      await this.runRound();
    }
  }

  /** Waits for a running snapshot, then one more round (so its objects are in the bucket). */
  async settle(): Promise<void> {
    await this.shipper?.settle();
    await this.syncNow();
  }

  private async generationStarted(generation: string, reason: string): Promise<void> {
    this.generationStartedMs = this.clock.nowMs();
    this.cachedWindow = null;
    await this.audit.record({
      action: 'replication_generation',
      actor: SYSTEM_ACTORS.system,
      targetType: 'replication',
      targetId: generation,
      detail: { generation, reason },
    });
  }

  private async maintain(): Promise<void> {
    const now = this.clock.nowMs();
    if (now - this.lastMaintenanceMs < MAINTENANCE_EVERY_MS || this.shipper === null) {
      return;
    }
    this.lastMaintenanceMs = now;
    const snapshotHours = await this.settings.getInt('general.replication_snapshot_hours');
    if (this.generationStartedMs > 0 && now - this.generationStartedMs >= snapshotHours * 3_600_000) {
      this.shipper.startNewGeneration('scheduled');
    }
    await this.applyRetention(now);
  }

  /** Deletes generations whose whole history is older than the window, never the newest nor the current one. */
  private async applyRetention(now: number): Promise<void> {
    const hours = await this.settings.getInt('general.replication_retention_hours');
    const window = await readWindow(this.store!);
    const listings = await this.store!.listGenerations();
    const keep = new Set([this.shipper?.currentGeneration, window.generations.at(-1)?.generation]);
    const cutoff = now - hours * 3_600_000;
    for (const g of window.generations) {
      if (g.to < cutoff && !keep.has(g.generation)) {
        const listing = listings.find((l) => l.generation === g.generation);
        if (listing) {
          await this.store!.deleteGeneration(listing);
          this.logger.log(`Deleted replication generation ${g.generation} (older than ${hours} h)`);
        }
      }
    }
    this.cachedWindow = null;
  }

  /** Starts a new generation from a fresh snapshot; the lead's restore path calls this after an online restore. */
  startNewGeneration(reason: string): void {
    this.shipper?.startNewGeneration(reason);
  }

  /** POST /api/backup/replication/snapshot: a new generation now; answers once its snapshot is taken. */
  async snapshotNow(actor: AuditActor, meta?: Partial<RequestMeta>): Promise<ReplicationSnapshotDto> {
    if (this.shipper === null) {
      throw new ApiError(HttpStatus.BAD_REQUEST, REPLICATION_OFF);
    }
    this.logger.log(`Replication snapshot asked for by ${actor.username}${meta?.ip ? ` from ${meta.ip}` : ''}`);
    this.shipper.startNewGeneration('manual');
    await this.shipper.settle();
    return { generation: this.shipper.currentGeneration };
  }

  /** The restorable window as the bucket holds it (cached briefly). */
  async window(): Promise<ReplicaWindow> {
    if (this.store === null) {
      throw new ApiError(HttpStatus.BAD_REQUEST, REPLICATION_OFF);
    }
    const now = this.clock.nowMs();
    if (this.cachedWindow === null || now - this.cachedWindow.at > WINDOW_CACHE_MS) {
      this.cachedWindow = { at: now, window: await readWindow(this.store) };
    }
    return this.cachedWindow.window;
  }

  /**
   * Rebuilds the database as of `at` into a standalone file in `options.scratchDir` (see replica-rebuild.ts for
   * the errors). Works whether or not this process streams: it needs the bucket and the identity file.
   */
  async rebuildAt(at: Date | 'latest', options: RebuildOptions & { identityFile?: string }): Promise<RebuildResult> {
    const offsite = this.config.offsite;
    if (offsite === undefined) {
      throw new ApiError(HttpStatus.BAD_REQUEST, REPLICATION_OFF);
    }
    const identityFile = options.identityFile ?? offsite.identityFile;
    if (offsite.recipients.length > 0 && identityFile === undefined) {
      throw new ApiError(
        HttpStatus.BAD_REQUEST,
        'The replica is encrypted: an identity file (BACKUP_ENCRYPTION_IDENTITY_FILE) is needed to rebuild from it',
      );
    }
    const bucket = new OffsiteBucket(offsite, this.config.offsiteRequestTimeoutMs);
    try {
      const store = new ReplicaStore(bucket, new AgeCrypto(offsite.recipients, identityFile));
      return await rebuildAt(store, at, { notAfterMs: this.clock.nowMs(), ...options });
    } finally {
      bucket.destroy();
    }
  }

  async status(): Promise<ReplicationStatusDto> {
    const view = this.progressView();
    let window: ReplicaWindow | null = null;
    let windowError: string | null = null;
    if (this.store !== null) {
      try {
        window = await this.window();
      } catch (error) {
        windowError = `Bucket: ${error instanceof Error ? error.message : String(error)}`;
      }
    }
    const last = this.shipper?.lastShippedMs ?? null;
    // While streaming with nothing waiting, everything up to the last round is restorable.
    const live = view.status === 'streaming' && view.lagMs === 0 && last !== null;
    const restorableTo = window?.restorable_to ? Math.max(window.restorable_to.getTime(), live ? last : 0) : null;
    return {
      status: view.status,
      generation: this.shipper?.generation ?? null,
      lag_ms: view.lagMs,
      last_shipped_at: last !== null ? new Date(last).toISOString() : null,
      pending_bytes: view.pendingBytes,
      restorable_from: window?.restorable_from?.toISOString() ?? null,
      restorable_to: restorableTo !== null ? new Date(restorableTo).toISOString() : null,
      gaps: (window?.gaps ?? []).map((g) => ({ from: g.from.toISOString(), to: g.to.toISOString() })),
      error: this.shipper?.lastError ?? windowError,
      compaction: {
        ranges_stored: this.compactor?.rangesStored ?? 0,
        last_error: this.compactor?.lastError ?? null,
      },
    };
  }

  private progressView() {
    const shipper = this.shipper;
    if (shipper === null) {
      return {
        enabled: this.enabled,
        status: 'off' as const,
        lagMs: 0,
        pendingBytes: 0,
        generationsTotal: 0,
        failuresTotal: 0,
      };
    }
    return {
      enabled: true,
      status: shipper.status(),
      lagMs: shipper.lagMs(),
      pendingBytes: shipper.spool.pendingBytes(),
      generationsTotal: shipper.generationsStarted,
      failuresTotal: shipper.failures,
    };
  }

  /**
   * Ships what is left before the database closes (Nest runs this before beforeApplicationShutdown, and the
   * database closes after both; its last connection's checkpoint then deletes the WAL).
   */
  async onModuleDestroy(): Promise<void> {
    await this.shutdown();
  }

  /**
   * Stops streaming after a last round. Graceful shutdown calls it before its own WAL checkpoint, so that checkpoint
   * does not truncate frames this service has not shipped yet; idempotent.
   */
  async shutdown(): Promise<void> {
    this.scheduler?.stop();
    this.scheduler = null;
    const shipper = this.shipper;
    if (shipper === null) {
      return;
    }
    try {
      await shipper.settle();
      await this.syncNow();
    } catch {
      // The spool keeps what could not be uploaded; the next start resumes it.
    }
    await this.compactor?.stop();
    this.compactor = null;
    shipper.stop();
    this.shipper = null;
  }
}
