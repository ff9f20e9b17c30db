import * as fs from 'node:fs';
import { FORMAT, newGenerationId } from './replica-layout';
import {
  checkpointPlan,
  MAX_SEGMENT_BYTES,
  type PendingSwitch,
  type ShipperDeps,
  type ShipperStatus,
} from './shipper-policy';
import type { ReadOutcome, SegmentTarget } from './shipper-io';
import { InlineShipperIo, type ShipperIo, ThreadShipperIo } from './shipper-thread';
import { type ShipperState, Spool } from './spool';
import { SpoolUploader } from './spool-uploader';
import { startOfCycle, WalFile, type WalPosition } from './wal-reader';

export type { ShipperDeps, ShipperStatus } from './shipper-policy';

/**
 * The replication engine: reads new committed WAL frames, spools them as encrypted segments, uploads them in order,
 * checkpoints the live database itself, and starts a new generation from a full snapshot whenever continuity cannot
 * be proven. Plain class (no Nest) so tests drive it round by round with their own clock. The reading, gzip, age,
 * spool writes and checkpoints run in a worker thread (shipper-io.ts); this class keeps the state and the order.
 *
 * Why continuity holds: the WAL is only restarted by a writer after a checkpoint copied every frame into the
 * database. This service checkpoints only while holding the write lock (BEGIN IMMEDIATE on a connection of its own),
 * after spooling, under that lock, whatever was committed since its last read: when the checkpoint copied exactly
 * the frames it has, the cycle is `closed` and the next cycle (salt1 + 1) continues the same history. Any other
 * change of the WAL header (a foreign checkpoint that reset or truncated it, the service down while others wrote)
 * is a lost continuity and starts a new generation.
 */

export class Shipper {
  private readonly wal: WalFile;
  readonly spool: Spool;
  private state: ShipperState;
  private io: ShipperIo | null = null;
  private switching: PendingSwitch | null = null;
  private snapshotRunning: Promise<void> | null = null;
  private retrySwitch: PendingSwitch | null = null;
  private queuedReason: string | null = null;
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  private lastCheckpointMs = 0;
  lastError: string | null = null;
  lastShippedMs: number | null = null;
  failures = 0;
  generationsStarted = 0;
  segmentsSpooled = 0;
  readonly uploader: SpoolUploader;

  constructor(private readonly deps: ShipperDeps) {
    this.wal = new WalFile(`${deps.dbPath}-wal`);
    this.spool = new Spool(deps.spoolDir);
    this.spool.clearTemp();
    this.uploader = new SpoolUploader(this.spool, deps.store);
    this.state = { generation: null, nextIndex: 0, position: null, closed: false };
  }

  get generation(): string | null {
    return this.switching === null ? this.state.generation : null;
  }

  get currentGeneration(): string | null {
    return this.state.generation;
  }

  status(): ShipperStatus {
    if (this.state.generation === null) {
      return this.lastError !== null ? 'failed' : 'starting';
    }
    if (this.uploadFailing) {
      return 'failed';
    }
    return this.spool.entries().length > 0 ? 'catching_up' : 'streaming';
  }

  /** The age of the oldest spooled commit (0 when nothing waits). */
  lagMs(): number {
    const oldest = this.spool.entries().find((e) => e.kind === 'segment');
    return oldest && oldest.kind === 'segment' ? Math.max(0, this.deps.now() - oldest.manifest.first_commit_ms) : 0;
  }

  /**
   * Opens the shipper's own connections and decides whether the saved position still describes the WAL (a crash
   * or kill left it as it was): then the generation goes on; otherwise a new one starts.
   */
  start(): void {
    const options = {
      dbPath: this.deps.dbPath,
      spoolDir: this.deps.spoolDir,
      recipients: this.deps.store.recipients,
      killAt: this.deps.killAt,
    };
    this.io = this.deps.inlineIo ? new InlineShipperIo(options) : new ThreadShipperIo(options);
    const saved = this.spool.loadState();
    if (saved?.generation) {
      this.spool.dropUnsaved(saved.generation, saved.nextIndex);
    }
    if (saved?.generation && saved.position && this.resumable(saved)) {
      this.state = saved;
      this.deps.log('log', `Replication resumes generation ${saved.generation}`);
      return;
    }
    this.beginSwitch(saved?.generation ? 'restart_lost_wal' : 'start', null);
  }

  stop(): void {
    this.stopped = true;
    this.io?.close();
    this.io = null;
  }

  private get thread(): ShipperIo {
    if (this.io === null) {
      throw new Error('The shipper is stopped');
    }
    return this.io;
  }

  /** A new generation from a fresh snapshot; `from` is set when it takes over without a gap. */
  startNewGeneration(reason: string): void {
    const continuous = reason === 'scheduled' || reason === 'manual';
    if (this.switching !== null) {
      // A generation under way serves a scheduled or manual one. Any other reason (a restore) follows it with a
      // generation of its own, so the audit trail names it even when the WAL was reset just before.
      if (!continuous) {
        this.queuedReason = reason;
      }
      return;
    }
    this.beginSwitch(reason, continuous ? this.state.generation : null);
  }

  /** True while a new generation waits for its snapshot. */
  get snapshotPending(): boolean {
    return this.switching !== null;
  }

  /**
   * The saved position still describes the WAL: it is there unchanged, or this service had closed that cycle and
   * the WAL has simply moved on to the next one (salt1 + 1), which then continues from its header.
   */
  private resumable(saved: ShipperState): boolean {
    const position = saved.position!;
    if (this.wal.stillAt(position)) {
      return true;
    }
    const state = this.wal.state();
    if (saved.closed && state.kind === 'ok' && state.header.salt1 === (position.salt1 + 1) >>> 0) {
      saved.position = startOfCycle(state.header);
      saved.closed = false;
      return true;
    }
    return false;
  }

  private beginSwitch(reason: string, from: string | null): void {
    const current = from !== null ? this.state.position : this.headerPosition();
    this.switching = {
      reason,
      cycle: current ? { salt1: current.salt1, salt2: current.salt2 } : null,
      closed: from !== null && this.state.closed,
      from,
    };
    if (from === null) {
      // History is broken here: the old generation stops, nothing is shipped until the new one has its snapshot.
      this.state = { generation: null, nextIndex: 0, position: null, closed: false };
    }
    const dest = this.spool.tempPath(`snapshot-${Date.now()}.db`);
    this.snapshotRunning = this.deps
      .snapshot(dest)
      .then(() => this.exclusive(() => this.finishSwitch(dest)))
      .catch((error: unknown) => {
        this.failures++;
        this.lastError = `Snapshot failed: ${error instanceof Error ? error.message : String(error)}`;
        if (this.stopped) {
          return;
        }
        this.deps.log('error', this.lastError);
        this.spool.clearTemp();
        const pending = this.switching;
        this.switching = null;
        // Tried again at the next round.
        this.retrySwitch = pending;
      });
  }

  private headerPosition(): WalPosition | null {
    const state = this.wal.state();
    return state.kind === 'ok' ? startOfCycle(state.header) : null;
  }

  /** The snapshot is complete: re-read the cycle it belongs to from its header and make that segment 0. */
  private async finishSwitch(snapshotFile: string): Promise<void> {
    const pending = this.switching;
    if (this.stopped || pending === null) {
      fs.rmSync(snapshotFile, { force: true });
      return;
    }
    // The old generation first gets everything up to now.
    if (pending.from !== null) {
      await this.shipNew();
      if (this.switching !== pending) {
        // Continuity broke meanwhile: another switch has begun with a snapshot of its own.
        fs.rmSync(snapshotFile, { force: true });
        return;
      }
    }
    const header = this.wal.state();
    const now = this.deps.now();
    const generation = newGenerationId(now);
    let read: ReadOutcome | null = null;
    let base: WalPosition | null = null;
    if (header.kind === 'ok') {
      const h = header.header;
      const sameAsStart = pending.cycle !== null && pending.cycle.salt1 === h.salt1 && pending.cycle.salt2 === h.salt2;
      const oneRestartAfterClose =
        pending.cycle !== null && pending.closed && h.salt1 === (pending.cycle.salt1 + 1) >>> 0;
      if (pending.cycle !== null && !sameAsStart && !oneRestartAfterClose) {
        // The WAL was reset while the snapshot was made: that snapshot cannot be tied to a position.
        fs.rmSync(snapshotFile, { force: true });
        this.switching = null;
        this.beginSwitch('wal_reset', null);
        return;
      }
      base = startOfCycle(h);
      read = await this.thread.read(base, MAX_SEGMENT_BYTES, this.target(generation, 0, now));
      if (read === null) {
        fs.rmSync(snapshotFile, { force: true });
        this.switching = null;
        this.beginSwitch('wal_reset', null);
        return;
      }
    }
    this.state = {
      generation,
      nextIndex: read !== null && read.commits > 0 ? 1 : 0,
      position: read?.next ?? null,
      closed: false,
    };
    if (read !== null && read.commits > 0) {
      this.segmentsSpooled++;
    }
    this.spool.addSnapshot(
      {
        format: FORMAT,
        kind: 'snapshot',
        generation,
        reason: pending.reason,
        created_ms: now,
        restorable_from_ms: now,
        continues: pending.from !== null ? { generation: pending.from, through_ms: now } : null,
        page_size: base?.pageSize ?? 0,
      },
      snapshotFile,
    );
    this.spool.saveState(this.state);
    this.switching = null;
    this.generationsStarted++;
    this.lastError = null;
    this.deps.log('log', `Replication generation ${generation} started (${pending.reason})`);
    await this.deps.onGeneration(generation, pending.reason);
    const queued = this.queuedReason;
    this.queuedReason = null;
    if (queued !== null) {
      this.beginSwitch(queued, null);
    }
  }

  /** A stamp that changes whenever the WAL file does (the scheduler's cheap look between rounds). */
  walStamp(): string {
    return this.wal.stamp();
  }

  /** One round: read new commits into the spool, checkpoint when due, upload what waits; true if it shipped any. */
  async round(): Promise<boolean> {
    const before = this.segmentsSpooled;
    await this.exclusive(async () => {
      if (this.retrySwitch !== null && this.switching === null) {
        const retry = this.retrySwitch;
        this.retrySwitch = null;
        this.beginSwitch(retry.reason, retry.from);
      }
      if (this.switching === null) {
        await this.shipNew();
        if (this.switching === null && this.state.generation !== null) {
          await this.checkpointIfDue();
        }
      } else if (this.switching.from !== null) {
        await this.shipNew();
      }
    });
    await this.upload();
    return this.segmentsSpooled !== before;
  }

  /** Reading the WAL, spooling and switching generations never interleave (they share the position). */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.chain.then(work);
    this.chain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Waits for a running snapshot (tests and shutdown). */
  async settle(): Promise<void> {
    while (this.snapshotRunning !== null) {
      const running = this.snapshotRunning;
      await running;
      if (this.snapshotRunning === running) {
        this.snapshotRunning = null;
      }
    }
  }

  private async shipNew(): Promise<void> {
    if (this.state.generation === null) {
      return;
    }
    const now = this.deps.now();
    for (;;) {
      let position = this.state.position;
      if (position === null) {
        const header = this.headerPosition();
        if (header === null) {
          return;
        }
        position = header;
        this.state.position = header;
      }
      const read = await this.thread.read(
        position,
        MAX_SEGMENT_BYTES,
        this.target(this.state.generation, this.state.nextIndex, now),
      );
      if (read === null) {
        const state = this.wal.state();
        if (state.kind === 'empty' && this.state.closed) {
          return;
        }
        if (state.kind === 'ok' && this.state.closed && state.header.salt1 === (position.salt1 + 1) >>> 0) {
          this.state.position = startOfCycle(state.header);
          this.state.closed = false;
          continue;
        }
        if (state.kind === 'invalid') {
          return;
        }
        this.lostContinuity(state.kind === 'empty' ? 'wal_truncated' : 'wal_reset');
        return;
      }
      if (read.commits === 0) {
        return;
      }
      this.segmentsSpooled++;
      this.state.nextIndex++;
      this.state.position = read.next;
      this.state.closed = false;
      this.spool.saveState(this.state);
      if (read.walBytes < MAX_SEGMENT_BYTES / 2) {
        // Caught up with what was there when the read began; newer commits are the next round's, so a steady
        // writer cannot keep this round (and the upload behind it) from finishing.
        return;
      }
    }
  }

  private lostContinuity(reason: string): void {
    this.deps.log('warn', `Replication continuity lost (${reason}): a new generation starts from a snapshot`);
    this.beginSwitch(reason, null);
  }

  /** Where the next segment is spooled (its entry number is taken now, so entries stay in order). */
  private target(generation: string, index: number, atMs: number): SegmentTarget {
    return { seq: this.spool.reserveSeq(), generation, index, atMs };
  }

  /**
   * PASSIVE checkpoint in the worker under our own write lock, never waited for while the WAL is under its bound:
   * when another connection is writing, the next round tries again. Past the bound the worker waits briefly for the
   * lock and truncates the WAL too. Either way the state saying "closed" is written before the lock is released.
   */
  private async checkpointIfDue(): Promise<void> {
    const position = this.state.position;
    if (position === null || this.state.closed) {
      return;
    }
    const plan = checkpointPlan(this.deps, position.offset, this.wal.size(), this.lastCheckpointMs);
    if (plan === null) {
      return;
    }
    const generation = this.state.generation!;
    const outcome = await this.thread.checkpoint(
      { ...this.state, generation, position },
      plan.mode,
      plan.waitMs,
      this.target(generation, this.state.nextIndex, this.deps.now()),
    );
    if (outcome.kind !== 'done') {
      return;
    }
    this.lastCheckpointMs = this.deps.now();
    if (outcome.tail !== null && outcome.tail.commits > 0) {
      this.segmentsSpooled++;
      this.state.nextIndex++;
    }
    // The worker saved this state itself, under the write lock.
    this.state.position = outcome.tail?.next ?? position;
    this.state.closed = outcome.closed;
    if (outcome.truncated && outcome.raced) {
      this.lostContinuity('wal_truncated');
    }
  }

  /** Uploads spooled entries in order; stops at the first failure (the rest waits, in order). */
  async upload(): Promise<void> {
    const outcome = await this.uploader.run();
    if (outcome.shippedMs !== null) {
      this.lastShippedMs = outcome.shippedMs;
    }
    if (outcome.error !== null) {
      this.failures++;
      this.lastError = `Upload failed: ${outcome.error}`;
      this.enforceSpoolBound();
    } else if (outcome.attempted) {
      this.lastError = null;
    }
  }

  get uploadFailing(): boolean {
    return this.uploader.failing;
  }

  /** A bucket away for long: rather than fill the disk, drop the spool and start over when it answers again. */
  private enforceSpoolBound(): void {
    const max = this.deps.spoolMaxBytes ?? 512 * 1024 * 1024;
    if (this.spool.pendingBytes() <= max) {
      return;
    }
    for (const entry of this.spool.entries()) {
      this.spool.remove(entry);
    }
    this.deps.log('error', 'Replication spool over its bound while the bucket is away: it starts over');
    this.lostContinuity('spool_full');
  }
}
