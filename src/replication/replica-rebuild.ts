import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { positionAt, type SegmentManifest, type SnapshotManifest } from './replica-layout';
import { ReplicaObjectError, type ReplicaStore } from './replica-store';
import { FRAME_HEADER_SIZE, sameCycle, scanFrames, WAL_HEADER_SIZE } from './wal-reader';

/**
 * Rebuilds the database as of a moment from the replica: the generation's snapshot, then every commit the shipper
 * observed at or before that moment, none after. The frames of each WAL cycle are written as a WAL file beside the
 * scratch copy and SQLite itself recovers and checkpoints them (as Litestream does); the result is proven complete
 * by the checkpoint's frame count, then made a standalone rollback-journal file.
 */

export interface GenerationWindow {
  generation: string;
  /** Earliest restorable moment (Unix ms). */
  from: number;
  /** Every commit observed up to this moment is in the generation (Unix ms). */
  to: number;
  /** Segments 0..n-1 are present without a hole. */
  segments: number;
  /** The generation took over from the previous one without a gap. */
  continuous: boolean;
  snapshot: SnapshotManifest;
  lastSegment: SegmentManifest | null;
}

export interface ReplicaWindow {
  restorable_from: Date | null;
  restorable_to: Date | null;
  /** Spans inside [restorable_from, restorable_to] that no generation covers (continuity was lost there). */
  gaps: { from: Date; to: Date }[];
  generations: GenerationWindow[];
}

/** The requested moment cannot be rebuilt: outside the window, in a gap, or nothing is stored yet. */
export class PointInTimeUnavailableError extends Error {
  constructor(
    message: string,
    readonly window: Pick<ReplicaWindow, 'restorable_from' | 'restorable_to' | 'gaps'>,
  ) {
    super(message);
    this.name = 'PointInTimeUnavailableError';
  }
}

/** A segment needed for the moment is missing or damaged; `lastGood` is what could be rebuilt safely. */
export class ReplicaDamagedError extends Error {
  constructor(
    readonly generation: string,
    readonly segment: number,
    readonly problem: string,
    readonly lastGood: Date,
  ) {
    super(
      `Replica segment ${segment} of generation ${generation} is ${problem}; the last good commit is at ` +
        lastGood.toISOString(),
    );
    this.name = 'ReplicaDamagedError';
  }
}

export interface RebuildOptions {
  /** Folder for the scratch files; the result is left there for the caller. */
  scratchDir: string;
  /** Stop at the last good commit before a damaged segment instead of refusing (the result then says so). */
  acceptLastGood?: boolean;
  /** Downloads in flight at once. */
  concurrency?: number;
  /** Refuse a moment after this (Unix ms): the service passes its clock, so the future is never "restorable". */
  notAfterMs?: number;
}

export interface RebuildResult {
  /** A standalone SQLite file (journal_mode=DELETE), quick_check ok. */
  file: string;
  /** The observed time of the last commit applied (the snapshot's time when none was needed). */
  restoredTo: Date;
  generation: string;
  commitsApplied: number;
  /** Set when acceptLastGood stopped early at a damaged segment. */
  stoppedEarly: { segment: number; problem: string } | null;
}

function describeWindow(window: Pick<ReplicaWindow, 'restorable_from' | 'restorable_to' | 'gaps'>): string {
  if (window.restorable_from === null || window.restorable_to === null) {
    return 'nothing is restorable yet';
  }
  const gaps = window.gaps.map((g) => `${g.from.toISOString()} – ${g.to.toISOString()}`);
  return (
    `restorable from ${window.restorable_from.toISOString()} to ${window.restorable_to.toISOString()}` +
    (gaps.length > 0 ? ` except ${gaps.join(', ')}` : '')
  );
}

/** Reads the replica's window from the bucket: one listing, one snapshot manifest and one segment manifest each. */
export async function readWindow(store: ReplicaStore): Promise<ReplicaWindow> {
  const listings = await store.listGenerations();
  const generations: GenerationWindow[] = [];
  for (const listing of listings) {
    if (!listing.hasSnapshot || !listing.hasSnapshotManifest) {
      continue;
    }
    const snapshot = await store.snapshotManifest(listing.generation);
    if (snapshot === null) {
      continue;
    }
    let contiguous = 0;
    while (contiguous < listing.segments.length && listing.segments[contiguous] === contiguous) {
      contiguous++;
    }
    const lastSegment = contiguous > 0 ? await store.segmentManifest(listing.generation, contiguous - 1) : null;
    generations.push({
      generation: listing.generation,
      from: snapshot.restorable_from_ms,
      to: Math.max(snapshot.restorable_from_ms, lastSegment?.last_commit_ms ?? 0),
      segments: contiguous,
      continuous: false,
      snapshot,
      lastSegment,
    });
  }
  // A generation that took over without a gap vouches for its predecessor until its own start.
  for (let i = 1; i < generations.length; i++) {
    const continues = generations[i].snapshot.continues;
    if (continues?.generation === generations[i - 1].generation) {
      generations[i - 1].to = Math.max(generations[i - 1].to, continues.through_ms);
      generations[i].continuous = true;
    }
  }
  const gaps: { from: Date; to: Date }[] = [];
  for (let i = 1; i < generations.length; i++) {
    if (generations[i].from > generations[i - 1].to) {
      gaps.push({ from: new Date(generations[i - 1].to), to: new Date(generations[i].from) });
    }
  }
  return {
    restorable_from: generations.length > 0 ? new Date(generations[0].from) : null,
    restorable_to: generations.length > 0 ? new Date(generations[generations.length - 1].to) : null,
    gaps,
    generations,
  };
}

/** The generation that serves `atMs`, or a PointInTimeUnavailableError that says what is restorable. */
export function generationFor(window: ReplicaWindow, at: number | 'latest'): GenerationWindow {
  const generations = window.generations;
  if (generations.length === 0) {
    throw new PointInTimeUnavailableError('No point in time is restorable yet: the replica is empty', window);
  }
  if (at === 'latest') {
    return generations[generations.length - 1];
  }
  // Newest first: where generations overlap, the newer one replays less.
  for (let i = generations.length - 1; i >= 0; i--) {
    const g = generations[i];
    const newest = i === generations.length - 1;
    if (at >= g.from && (at <= g.to || newest)) {
      return g;
    }
  }
  throw new PointInTimeUnavailableError(
    `${new Date(at).toISOString()} cannot be restored: ${describeWindow(window)}`,
    window,
  );
}

interface CycleWal {
  fd: number;
  path: string;
  cycle: { salt1: number; salt2: number };
  frames: number;
}

/** Opens the scratch database so SQLite recovers the WAL beside it, checkpoints it and proves every frame went in. */
function applyCycle(file: string, wal: CycleWal): void {
  fs.fsyncSync(wal.fd);
  fs.closeSync(wal.fd);
  const db = new Database(file);
  try {
    // The snapshot is a rollback-journal file: SQLite opens (and recovers) the WAL beside it only on its first read.
    db.prepare('SELECT count(*) FROM sqlite_master').get();
    type Row = { busy: number; log: number; checkpointed: number };
    // PASSIVE first: it reports how many frames SQLite recovered (TRUNCATE reports the emptied WAL).
    const [row] = db.pragma('wal_checkpoint(PASSIVE)') as Row[];
    if (row.busy !== 0 || row.log !== wal.frames || row.checkpointed !== wal.frames) {
      throw new Error(`SQLite recovered ${row.log} of ${wal.frames} WAL frames`);
    }
    const [truncated] = db.pragma('wal_checkpoint(TRUNCATE)') as Row[];
    if (truncated.busy !== 0) {
      throw new Error('The rebuilt WAL could not be checkpointed');
    }
  } finally {
    db.close();
  }
  fs.rmSync(wal.path, { force: true });
}

/**
 * Rebuilds the state as of `at` (every commit observed at or before it) into a new standalone file in
 * `options.scratchDir`. Throws PointInTimeUnavailableError outside the window or in a gap, ReplicaDamagedError
 * when a needed segment is missing or damaged (unless acceptLastGood), ReplicaObjectError for a bad snapshot.
 */
export async function rebuildAt(
  store: ReplicaStore,
  at: Date | 'latest',
  options: RebuildOptions,
  knownWindow?: ReplicaWindow,
): Promise<RebuildResult> {
  const window = knownWindow ?? (await readWindow(store));
  const atMs = at === 'latest' ? Number.POSITIVE_INFINITY : at.getTime();
  if (options.notAfterMs !== undefined && atMs !== Number.POSITIVE_INFINITY && atMs > options.notAfterMs) {
    throw new PointInTimeUnavailableError(
      `${new Date(atMs).toISOString()} is in the future: ${describeWindow(window)}`,
      window,
    );
  }
  const generation = generationFor(window, at === 'latest' ? 'latest' : atMs);
  fs.mkdirSync(options.scratchDir, { recursive: true });
  const stem = path.join(options.scratchDir, `pitr-${generation.generation}-${randomBytes(4).toString('hex')}`);
  const file = `${stem}.db`;
  const walPath = `${file}-wal`;
  let wal: CycleWal | null = null;
  try {
    await store.readSnapshot(generation.snapshot, file);
    let restoredTo = generation.snapshot.restorable_from_ms;
    let applied = 0;
    let stoppedEarly: RebuildResult['stoppedEarly'] = null;
    let previous: SegmentManifest | null = null;
    const concurrency = Math.max(1, options.concurrency ?? 8);
    const fetches = new Map<number, Promise<{ manifest: SegmentManifest; plain: Buffer | null }>>();
    const fetchSegment = (index: number): Promise<{ manifest: SegmentManifest; plain: Buffer | null }> => {
      let pending = fetches.get(index);
      if (!pending) {
        pending = (async () => {
          const manifest = await store.segmentManifest(generation.generation, index);
          if (manifest === null) {
            throw new ReplicaObjectError(`segment ${index}`, 'missing');
          }
          // A segment wholly after the moment is never needed: its damage must not refuse an earlier moment.
          return { manifest, plain: manifest.first_commit_ms > atMs ? null : await store.readSegment(manifest) };
        })();
        // Handled where it is awaited; this only keeps an early failure from being reported as unhandled.
        pending.catch(() => undefined);
        fetches.set(index, pending);
      }
      return pending;
    };
    const total = generation.segments;
    for (let index = 0; index < total; index++) {
      for (let ahead = index; ahead < Math.min(total, index + concurrency); ahead++) {
        void fetchSegment(ahead);
      }
      let segment: { manifest: SegmentManifest; plain: Buffer | null };
      try {
        segment = await fetchSegment(index);
      } catch (error) {
        const problem = error instanceof ReplicaObjectError ? error.problem : 'unreadable';
        stoppedEarly = { segment: index, problem };
        break;
      } finally {
        fetches.delete(index);
      }
      const { manifest, plain } = segment;
      if (plain === null) {
        break;
      }
      const problem = chainProblem(previous, manifest, plain);
      if (problem !== null) {
        stoppedEarly = { segment: index, problem };
        break;
      }
      if (wal !== null && !sameCycle(wal.cycle, manifest.cycle)) {
        const done = wal;
        wal = null;
        applyCycle(file, done);
      }
      if (wal === null) {
        wal = { fd: fs.openSync(walPath, 'w', 0o600), path: walPath, cycle: manifest.cycle, frames: 0 };
      }
      const frameSize = FRAME_HEADER_SIZE + manifest.cycle.page_size;
      const headerBytes = manifest.start_offset === WAL_HEADER_SIZE ? WAL_HEADER_SIZE : 0;
      const kept = manifest.commits.filter((c) => c.at_ms <= atMs);
      for (const commit of kept) {
        restoredTo = commit.at_ms;
        applied++;
      }
      const lastEnd = kept.length > 0 ? kept[kept.length - 1].end : manifest.start_offset;
      const cut = headerBytes + (lastEnd - manifest.start_offset);
      fs.writeSync(wal.fd, plain, 0, cut);
      wal.frames += (cut - headerBytes) / frameSize;
      previous = manifest;
      if (cut < plain.length) {
        break;
      }
    }
    if (wal !== null) {
      const done = wal;
      wal = null;
      applyCycle(file, done);
    }
    if (stoppedEarly !== null && !options.acceptLastGood) {
      throw new ReplicaDamagedError(
        generation.generation,
        stoppedEarly.segment,
        stoppedEarly.problem,
        new Date(restoredTo),
      );
    }
    finishStandalone(file);
    return {
      file,
      restoredTo: new Date(restoredTo),
      generation: generation.generation,
      commitsApplied: applied,
      stoppedEarly,
    };
  } catch (error) {
    if (wal !== null) {
      fs.closeSync(wal.fd);
    }
    for (const leftover of [file, walPath, `${file}-shm`, `${file}-journal`]) {
      fs.rmSync(leftover, { force: true });
    }
    throw error;
  }
}

/** Why `manifest` cannot follow `previous` (or start a generation), or null when the chain holds. */
function chainProblem(previous: SegmentManifest | null, manifest: SegmentManifest, plain: Buffer): string | null {
  const headerBytes = manifest.start_offset === WAL_HEADER_SIZE ? WAL_HEADER_SIZE : 0;
  if (previous === null) {
    if (headerBytes === 0) {
      return 'not the start of a WAL cycle';
    }
  } else if (sameCycle(previous.cycle, manifest.cycle)) {
    if (
      manifest.start_offset !== previous.end_offset ||
      manifest.start_checksum[0] !== previous.end_checksum[0] ||
      manifest.start_checksum[1] !== previous.end_checksum[1]
    ) {
      return 'not continuous with the segment before it';
    }
  } else if (headerBytes === 0) {
    return 'a new WAL cycle that does not start at its header';
  }
  if (headerBytes > 0 && plain.subarray(0, WAL_HEADER_SIZE).toString('hex') !== manifest.cycle.header) {
    return 'a WAL header that does not match its manifest';
  }
  // Re-validate every frame with SQLite's checksums: the commits must be exactly the manifest's.
  const read = scanFrames(
    plain.subarray(headerBytes),
    positionAt(manifest.cycle, manifest.start_offset, manifest.start_checksum),
  );
  if (
    read.frames.length !== plain.length - headerBytes ||
    read.commits.length !== manifest.commits.length ||
    read.commits.some((c, i) => c.end !== manifest.commits[i].end) ||
    read.next.offset !== manifest.end_offset
  ) {
    return 'frames that fail their checksums';
  }
  return null;
}

/** journal_mode=DELETE (no -wal needed beside it) and quick_check, so the file stands alone. */
function finishStandalone(file: string): void {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = DELETE');
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') {
      throw new Error(`The rebuilt database fails quick_check: ${String(check)}`);
    }
  } finally {
    db.close();
  }
}
