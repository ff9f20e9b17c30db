import Database from 'better-sqlite3';
import * as zlib from 'node:zlib';
import { newAgeFile, PayloadSealer } from '../offsite/age-stream';
import { closeQuietly } from '../sqlite/close-quietly';
import { segmentManifest, sha256 } from './replica-layout';
import { type ShipperState, writeSegmentEntry, writeStateFile } from './spool';
import { FRAME_HEADER_SIZE, WAL_HEADER_SIZE, WalFile, type WalPosition } from './wal-reader';

/**
 * The shipper's work that touches the WAL, the CPU, the spool's disk or SQLite's locks: reading and verifying new
 * frames, gzip, age, sha256, the fsynced spool entry, and the checkpoints. Synchronous and Nest-free, so it runs in a
 * worker thread (shipper-thread.ts) and the service's event loop only hands positions over and gets positions back.
 * The write lock is taken and released inside one synchronous call here, so it is never held across an await of
 * anyone's event loop (the app's own writes wait for it synchronously on the main thread).
 */

/** Segments are small and many: a fast level keeps the shipper's CPU low (the snapshot gets the default). */
export const SEGMENT_GZIP_LEVEL = 1;
/** A longer tail under the write lock is left for the next round (the cycle then stays open). */
const TAIL_MAX_BYTES = 64 * 1024 * 1024;

export interface ShipperIoOptions {
  dbPath: string;
  spoolDir: string;
  /** age recipients; empty means plaintext (gzip only). */
  recipients: readonly string[];
  /** Tests only: SIGKILL the whole process at this point (the kill specs' fault points). */
  killAt?: KillPoint;
}

/**
 * - `segment-spooled`: a segment is in the spool, the position past it not saved yet;
 * - `checkpoint-copied`: under the write lock, PASSIVE has copied the frames, the state is not saved yet;
 * - `checkpoint-closed`: under the write lock, the state saying "closed" is saved;
 * - `before-truncate`: the lock is released, the TRUNCATE not run yet;
 * - `after-truncate`: the WAL is truncated, the next cycle's first commit not written yet.
 */
export type KillPoint =
  'segment-spooled' | 'checkpoint-copied' | 'checkpoint-closed' | 'before-truncate' | 'after-truncate';

/** Where the next segment goes: its spool entry number, its generation and index, and its commits' observed time. */
export interface SegmentTarget {
  seq: number;
  generation: string;
  index: number;
  atMs: number;
}

/** What a read found: the position after it, and whether a segment was spooled (null: the WAL left that cycle). */
export interface ReadOutcome {
  commits: number;
  next: WalPosition;
  /** Bytes of WAL read; a read that stopped at its limit leaves more for the next one. */
  walBytes: number;
}

export type CheckpointMode = 'PASSIVE' | 'TRUNCATE';

export type CheckpointOutcome =
  /** Someone else held the write lock for longer than we would wait, or the WAL is not the cycle we know. */
  | { kind: 'busy' | 'moved' }
  | {
      kind: 'done';
      /** Commits found after the shipped position under the lock, spooled with `target` before the checkpoint. */
      tail: ReadOutcome | null;
      /** PASSIVE copied exactly the shipped frames: the cycle is closed and the next writer restarts the WAL. */
      closed: boolean;
      /** TRUNCATE emptied the WAL file. */
      truncated: boolean;
      /**
       * Another connection committed between our PASSIVE checkpoint and the TRUNCATE: its frames may have been
       * checkpointed and cut before we read them, so continuity cannot be proven.
       */
      raced: boolean;
    };

/** gzip then age, in one synchronous pass (the payload is one segment, a few MiB at most). */
export function encodeSegmentBytes(plain: Buffer, recipients: readonly string[]): Buffer {
  return sealForReplica(zlib.gzipSync(plain, { level: SEGMENT_GZIP_LEVEL }), recipients);
}

/** An age file of `compressed` for the recipients, or the bytes as they are when there are none (plaintext mode). */
export function sealForReplica(compressed: Buffer, recipients: readonly string[]): Buffer {
  if (recipients.length === 0) {
    return compressed;
  }
  const { key, prefix } = newAgeFile(recipients);
  const sealer = new PayloadSealer(key, prefix, false);
  key.fill(0);
  const parts = sealer.writeParts(compressed);
  parts.push(sealer.end().sealed);
  return Buffer.concat(parts);
}

export class ShipperIoCore {
  private readonly wal: WalFile;
  private lockConn: Database.Database | null = null;
  private checkpointConn: Database.Database | null = null;

  constructor(private readonly options: ShipperIoOptions) {
    this.wal = new WalFile(`${options.dbPath}-wal`);
  }

  /**
   * The committed frames after `from` (at most about `maxBytes`), encoded and spooled as `target` (fsynced) when
   * there are any; null when the WAL left that cycle.
   */
  read(from: WalPosition, maxBytes: number, target: SegmentTarget): ReadOutcome | null {
    const read = this.wal.readFrom(from, maxBytes);
    if (read === null) {
      return null;
    }
    const walBytes = read.next.offset - from.offset;
    if (read.commits.length === 0) {
      return { commits: 0, next: read.next, walBytes };
    }
    const header = from.offset === WAL_HEADER_SIZE ? Buffer.from(from.header, 'hex') : Buffer.alloc(0);
    const plain = Buffer.concat([header, read.frames]);
    const bytes = encodeSegmentBytes(plain, this.options.recipients);
    const manifest = segmentManifest(target.generation, target.index, from, read, target.atMs, {
      size: plain.length,
      sha256: sha256(plain),
      bytes,
      objectSha256: sha256(bytes),
      encrypted: this.options.recipients.length > 0,
    });
    writeSegmentEntry(this.options.spoolDir, target.seq, manifest, bytes);
    this.reach('segment-spooled');
    return { commits: read.commits.length, next: read.next, walBytes };
  }

  /**
   * A checkpoint under our own write lock (BEGIN IMMEDIATE on a connection of its own, waiting at most `waitMs`):
   * commits that arrived after the shipped position are read and spooled first, under that lock (nothing new can
   * commit then), so a steady writer cannot keep the WAL from ever being checkpointed. The state saying "closed"
   * is written before the lock is released. With TRUNCATE (a WAL past its bound) the WAL is then also emptied:
   * TRUNCATE needs the write lock itself, so ours is released first and `data_version` tells whether anyone
   * committed in that gap.
   */
  checkpoint(
    state: ShipperState & { position: WalPosition; generation: string },
    mode: CheckpointMode,
    waitMs: number,
    target: SegmentTarget,
  ): CheckpointOutcome {
    const { lock, checkpoint } = this.connections();
    lock.pragma(`busy_timeout = ${Math.max(0, Math.floor(waitMs))}`);
    try {
      lock.exec('BEGIN IMMEDIATE');
    } catch {
      return { kind: 'busy' };
    }
    let tail: ReadOutcome | null = null;
    let closed: boolean;
    let versionBefore: number;
    try {
      let position = state.position;
      if (!this.wal.stillAt(position)) {
        return { kind: 'moved' };
      }
      if (this.wal.frameAfter(position)) {
        tail = this.read(position, TAIL_MAX_BYTES, target);
        if (tail === null) {
          return { kind: 'moved' };
        }
        position = tail.next;
        if (tail.commits > 0 && this.wal.frameAfter(position)) {
          // More than one read's worth arrived: a checkpoint now would copy commits not shipped yet, and a complete
          // one lets the next writer restart the WAL over them. Ship this part, checkpoint another round.
          writeStateFile(this.options.spoolDir, { ...state, nextIndex: state.nextIndex + 1, position });
          return { kind: 'done', tail, closed: false, truncated: false, raced: false };
        }
      }
      versionBefore = checkpoint.pragma('data_version', { simple: true }) as number;
      const [row] = checkpoint.pragma('wal_checkpoint(PASSIVE)') as { log: number; checkpointed: number }[];
      const frames = (position.offset - WAL_HEADER_SIZE) / (FRAME_HEADER_SIZE + position.pageSize);
      closed = row.log === frames && row.checkpointed === frames;
      this.reach('checkpoint-copied');
      if (tail !== null || closed) {
        // Before anyone can write again (and before a TRUNCATE): a kill from here on restarts into a WAL that this
        // state describes (the same cycle, or the next one when closed), never into an unexplained one.
        const next = tail !== null && tail.commits > 0 ? state.nextIndex + 1 : state.nextIndex;
        writeStateFile(this.options.spoolDir, { ...state, nextIndex: next, position, closed });
        this.reach('checkpoint-closed');
      }
    } finally {
      lock.exec('ROLLBACK');
    }
    if (mode === 'PASSIVE' || !closed) {
      return { kind: 'done', tail, closed, truncated: false, raced: false };
    }
    this.reach('before-truncate');
    checkpoint.pragma(`busy_timeout = ${Math.max(0, Math.floor(waitMs))}`);
    try {
      const [row] = checkpoint.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
      const raced = (checkpoint.pragma('data_version', { simple: true }) as number) !== versionBefore;
      const truncated = row.busy === 0;
      if (truncated) {
        this.reach('after-truncate');
        this.openNextCycle(checkpoint);
      }
      return { kind: 'done', tail, closed, truncated, raced };
    } finally {
      checkpoint.pragma('busy_timeout = 0');
    }
  }

  /**
   * The first commit into an empty WAL writes its header, with salt1 one more than the last cycle's only when the
   * committing connection has itself restarted a WAL before (SQLite's nCkpt); the app's connection never has, and
   * would pick random salts, which cannot be told from a foreign reset. So the connection that truncated commits
   * first: a no-op write of user_version, shipped like any commit. A writer slipping in before it still gives
   * random salts, and a new generation, audited.
   */
  private openNextCycle(db: Database.Database): void {
    try {
      db.transaction(() => {
        const version = Number(db.pragma('user_version', { simple: true }));
        db.pragma(`user_version = ${version}`);
      }).immediate();
    } catch {
      // Busy: the next writer opens the cycle.
    }
  }

  private reach(point: KillPoint): void {
    if (this.options.killAt === point) {
      process.kill(process.pid, 'SIGKILL');
    }
  }

  private connections(): { lock: Database.Database; checkpoint: Database.Database } {
    if (this.lockConn === null || this.checkpointConn === null) {
      this.lockConn = new Database(this.options.dbPath, { fileMustExist: true });
      this.lockConn.pragma('busy_timeout = 0');
      this.checkpointConn = new Database(this.options.dbPath, { fileMustExist: true });
      this.checkpointConn.pragma('busy_timeout = 0');
      this.checkpointConn.pragma('wal_autocheckpoint = 0');
    }
    return { lock: this.lockConn, checkpoint: this.checkpointConn };
  }

  close(): void {
    closeQuietly(this.lockConn ?? undefined);
    closeQuietly(this.checkpointConn ?? undefined);
    this.lockConn = null;
    this.checkpointConn = null;
  }
}
