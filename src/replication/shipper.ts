import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import { FORMAT, newGenerationId, segmentManifest } from './replica-layout';
import type { ReplicaStore } from './replica-store';
import { type ShipperState, Spool } from './spool';
import { SpoolUploader } from './spool-uploader';
import {
  FRAME_HEADER_SIZE,
  startOfCycle,
  WAL_HEADER_SIZE,
  WalFile,
  type WalPosition,
  type WalRead,
} from './wal-reader';

/**
 * The replication engine: reads new committed WAL frames (wal-reader.ts), spools them as encrypted segments,
 * uploads them in order, checkpoints the live database itself, and starts a new generation from a full snapshot
 * whenever continuity cannot be proven. Plain class (no Nest) so tests drive it round by round with their own clock.
 *
 * Why continuity holds: the WAL is only restarted by a writer after a checkpoint copied every frame into the
 * database. This service checkpoints only while holding the write lock (BEGIN IMMEDIATE on a connection of its own,
 * never waiting for it), after reading the WAL to its end under that lock: when the checkpoint copied exactly the
 * frames it has, the cycle is `closed` and the next cycle (salt1 + 1) continues the same history. Any other change
 * of the WAL header (a foreign checkpoint that reset or truncated it, the service down while others wrote) is a
 * lost continuity and starts a new generation.
 */

export interface ShipperDeps {
  dbPath: string;
  spoolDir: string;
  store: ReplicaStore;
  now: () => number;
  /** Makes a verified, standalone snapshot of the live database at `dest` (the backup path). */
  snapshot: (dest: string) => Promise<void>;
  /** Called when a generation starts (for the audit trail and metrics). */
  onGeneration: (generation: string, reason: string) => Promise<void> | void;
  log: (level: 'log' | 'warn' | 'error', message: string) => void;
  /** Checkpoint once the WAL is this big, or this long after the last one (a shorter WAL replays faster). */
  checkpointBytes?: number;
  checkpointEveryMs?: number;
  /** Beyond this much spooled data the spool is given up and a new generation starts once the bucket answers. */
  spoolMaxBytes?: number;
}

export type ShipperStatus = 'starting' | 'streaming' | 'catching_up' | 'failed';

interface PendingSwitch {
  reason: string;
  /** The cycle (salts) when the snapshot began, and whether this service had closed it. */
  cycle: { salt1: number; salt2: number } | null;
  closed: boolean;
  /** The generation the new one takes over from without a gap, if continuity held. */
  from: string | null;
}

export class Shipper {
  private readonly wal: WalFile;
  readonly spool: Spool;
  private state: ShipperState;
  private lockConn: Database.Database | null = null;
  private checkpointConn: Database.Database | null = null;
  private switching: PendingSwitch | null = null;
  private snapshotRunning: Promise<void> | null = null;
  private retrySwitch: PendingSwitch | null = null;
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  private lastCheckpointMs = 0;
  lastError: string | null = null;
  lastShippedMs: number | null = null;
  failures = 0;
  generationsStarted = 0;
  private readonly uploader: SpoolUploader;

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
    this.lockConn = new Database(this.deps.dbPath, { fileMustExist: true });
    this.lockConn.pragma('busy_timeout = 0');
    this.checkpointConn = new Database(this.deps.dbPath, { fileMustExist: true });
    this.checkpointConn.pragma('busy_timeout = 0');
    this.checkpointConn.pragma('wal_autocheckpoint = 0');
    const saved = this.spool.loadState();
    if (saved?.generation && saved.position && this.resumable(saved)) {
      this.state = saved;
      this.deps.log('log', `Replication resumes generation ${saved.generation}`);
      return;
    }
    this.beginSwitch(saved?.generation ? 'restart_lost_wal' : 'start', null);
  }

  stop(): void {
    this.stopped = true;
    this.lockConn?.close();
    this.checkpointConn?.close();
    this.lockConn = null;
    this.checkpointConn = null;
  }

  /** A new generation from a fresh snapshot; `from` is set when it takes over without a gap. */
  startNewGeneration(reason: string): void {
    if (this.switching !== null) {
      return;
    }
    const continuous = reason === 'scheduled' || reason === 'manual';
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
    let read: WalRead | null = null;
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
      read = this.wal.readFrom(base);
      if (read === null) {
        fs.rmSync(snapshotFile, { force: true });
        this.switching = null;
        this.beginSwitch('wal_reset', null);
        return;
      }
    }
    const generation = newGenerationId(now);
    this.state = { generation, nextIndex: 0, position: read ? read.next : null, closed: false };
    if (read !== null && base !== null && read.commits.length > 0) {
      await this.spoolSegment(base, read, now);
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
  }

  /** One round: read new commits into the spool, checkpoint when due, upload what waits. */
  async round(): Promise<void> {
    await this.exclusive(async () => {
      if (this.retrySwitch !== null && this.switching === null) {
        const retry = this.retrySwitch;
        this.retrySwitch = null;
        this.beginSwitch(retry.reason, retry.from);
      }
      if (this.switching === null) {
        await this.shipNew();
        if (this.switching === null && this.state.generation !== null) {
          this.checkpointIfDue();
        }
      } else if (this.switching.from !== null) {
        await this.shipNew();
      }
    });
    await this.upload();
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
      const read = this.wal.readFrom(position);
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
      if (read.commits.length === 0) {
        return;
      }
      await this.spoolSegment(position, read, now);
      this.state.closed = false;
      this.spool.saveState(this.state);
    }
  }

  private lostContinuity(reason: string): void {
    this.deps.log('warn', `Replication continuity lost (${reason}): a new generation starts from a snapshot`);
    this.beginSwitch(reason, null);
  }

  private async spoolSegment(from: WalPosition, read: WalRead, atMs: number): Promise<void> {
    const header = from.offset === WAL_HEADER_SIZE ? Buffer.from(from.header, 'hex') : Buffer.alloc(0);
    const plain = Buffer.concat([header, read.frames]);
    const encoded = await this.deps.store.encodeSegment(plain);
    const manifest = segmentManifest(this.state.generation!, this.state.nextIndex, from, read, atMs, {
      size: plain.length,
      encrypted: this.deps.store.encrypted,
      ...encoded,
    });
    await this.spool.addSegment(manifest, encoded.bytes);
    this.state.nextIndex++;
    this.state.position = read.next;
  }

  /**
   * PASSIVE checkpoint under our own write lock, never waited for: when another connection is writing, the next
   * round tries again. Everything in the WAL is read first, so the cycle can be marked closed.
   */
  private checkpointIfDue(): void {
    const position = this.state.position;
    if (position === null || this.lockConn === null || this.checkpointConn === null) {
      return;
    }
    const walBytes = position.offset;
    const due =
      walBytes >= (this.deps.checkpointBytes ?? 4 * 1024 * 1024) ||
      (walBytes > WAL_HEADER_SIZE &&
        this.deps.now() - this.lastCheckpointMs >= (this.deps.checkpointEveryMs ?? 30_000));
    if (!due || this.state.closed) {
      return;
    }
    try {
      this.lockConn.exec('BEGIN IMMEDIATE');
    } catch {
      return;
    }
    try {
      const tail = this.wal.readFrom(position);
      if (tail === null || tail.commits.length > 0) {
        // Frames arrived since the read: ship them first, checkpoint next round.
        return;
      }
      const [row] = this.checkpointConn.pragma('wal_checkpoint(PASSIVE)') as {
        busy: number;
        log: number;
        checkpointed: number;
      }[];
      const frames = (position.offset - WAL_HEADER_SIZE) / (FRAME_HEADER_SIZE + position.pageSize);
      this.lastCheckpointMs = this.deps.now();
      if (row.log === frames && row.checkpointed === frames) {
        this.state.closed = true;
        this.spool.saveState(this.state);
      }
    } finally {
      this.lockConn.exec('ROLLBACK');
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
