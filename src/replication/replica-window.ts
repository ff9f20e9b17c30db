import type { SnapshotManifest, SegmentManifest } from './replica-layout';
import type { ReplicaStore } from './replica-store';

/**
 * The replica's window: which moments the generations in the bucket can rebuild, and the gaps between them.
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
  /** Compacted ranges in the bucket (first..last segment index). */
  ranges: { first: number; last: number }[];
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

export function describeWindow(window: Pick<ReplicaWindow, 'restorable_from' | 'restorable_to' | 'gaps'>): string {
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
      ranges: listing.ranges,
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
