import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { applyFrames, decodePageSet, ScratchFilePages } from './page-apply';
import { positionAt, type RangeManifest, type SegmentManifest, type WalLink } from './replica-layout';
import { ReplicaObjectError, type ReplicaStore } from './replica-store';
import {
  generationFor,
  describeWindow,
  type GenerationWindow,
  PointInTimeUnavailableError,
  readWindow,
  ReplicaDamagedError,
  type ReplicaWindow,
} from './replica-window';
import { FRAME_HEADER_SIZE, sameCycle, scanFrames, WAL_HEADER_SIZE } from './wal-reader';

/**
 * Rebuilds the database as of a moment from the replica: the generation's snapshot, then every commit the shipper
 * observed at or before that moment, none after. Compacted ranges wholly before the moment stand in for their
 * segments. Every segment's frames are proven first with SQLite's own checksums and salts, in one unbroken chain
 * from the generation's start; then each frame's page is written into the private scratch copy, and each commit
 * sets the size it recorded, which is what SQLite's checkpoint of those frames would leave. The result is made a
 * standalone rollback-journal file and passes quick_check; the restore's admission then reads every table.
 */

export interface RebuildOptions {
  /** Folder for the scratch files; the result is left there for the caller. */
  scratchDir: string;
  /** Build the result at this path (an existing file, overwritten) instead of a new name in scratchDir. */
  into?: string;
  /** Stop at the last good commit before a damaged segment instead of refusing (the result then says so). */
  acceptLastGood?: boolean;
  /** Downloads in flight at once. */
  concurrency?: number;
  /**
   * Skip the closing quick_check: for callers that pass the file to the import pipeline's admission, which runs
   * quick_check and reads every table anyway (on 1 GiB, one full read saved). Default false.
   */
  admissionChecks?: boolean;
  /** Read every segment even where a compacted range would do (to compare the two; default true). */
  ranges?: boolean;
  /** Refuse a moment after this (Unix ms): the service passes its clock, so the future is never "restorable". */
  notAfterMs?: number;
}

export interface RebuildResult {
  /** A standalone SQLite file (journal_mode=DELETE), quick_check ok unless `admissionChecks` left that to the caller. */
  file: string;
  /** The observed time of the last commit applied (the snapshot's time when none was needed). */
  restoredTo: Date;
  generation: string;
  commitsApplied: number;
  /** Compacted ranges used, and ranges that could not be used (their segments were read instead). */
  rangesApplied: number;
  rangesSkipped: number;
  segmentsApplied: number;
  /** Set when acceptLastGood stopped early at a damaged segment. */
  stoppedEarly: { segment: number; problem: string } | null;
  /** Where the time went, in ms: what an operator (and the benchmark) needs to see why a rebuild is slow. */
  timings: { snapshot: number; waitingForSegments: number; checking: number; applying: number; finishing: number };
}

type Step = { kind: 'segment'; index: number } | { kind: 'range'; manifest: RangeManifest };
type Fetched =
  | { kind: 'segment'; manifest: SegmentManifest; plain: Buffer | null }
  | { kind: 'range'; manifest: RangeManifest; plain: Buffer };

function stepKey(step: Step): string {
  return step.kind === 'segment' ? `s${step.index}` : `r${step.manifest.first_index}-${step.manifest.last_index}`;
}

function segmentSteps(first: number, last: number): Step[] {
  return Array.from({ length: last - first + 1 }, (_, i) => ({ kind: 'segment', index: first + i }));
}

/** At most `limit` calls of `work` at once, results in order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]);
    }
  });
  await Promise.all(lanes);
  return results;
}

/**
 * The order of work: a compacted range wherever one starts and every commit in it is at or before the moment (the
 * longest such), the segments themselves everywhere else. A range whose manifest cannot be read is not used.
 */
async function planSteps(
  store: ReplicaStore,
  generation: GenerationWindow,
  atMs: number,
  concurrency: number,
): Promise<Step[]> {
  const candidates = generation.ranges.filter((r) => r.last < generation.segments && r.first <= r.last);
  const manifests = await mapLimit(candidates, concurrency, (r) =>
    store.rangeManifest(generation.generation, r.first, r.last).catch(() => null),
  );
  const byFirst = new Map<number, RangeManifest>();
  for (const manifest of manifests) {
    if (manifest !== null && manifest.last_commit_ms <= atMs) {
      const known = byFirst.get(manifest.first_index);
      if (known === undefined || manifest.last_index > known.last_index) {
        byFirst.set(manifest.first_index, manifest);
      }
    }
  }
  const steps: Step[] = [];
  for (let index = 0; index < generation.segments;) {
    const range = byFirst.get(index);
    if (range !== undefined) {
      steps.push({ kind: 'range', manifest: range });
      index = range.last_index + 1;
    } else {
      steps.push({ kind: 'segment', index });
      index++;
    }
  }
  return steps;
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
  const file = options.into ?? `${stem}.db`;
  let pages: ScratchFilePages | null = null;
  try {
    const timings: RebuildResult['timings'] = {
      snapshot: 0,
      waitingForSegments: 0,
      checking: 0,
      applying: 0,
      finishing: 0,
    };
    let mark = performance.now();
    const lap = (phase: keyof RebuildResult['timings']): void => {
      const now = performance.now();
      timings[phase] += now - mark;
      mark = now;
    };
    const concurrency = Math.max(1, options.concurrency ?? 8);
    const [steps] = await Promise.all([
      planSteps(store, options.ranges === false ? { ...generation, ranges: [] } : generation, atMs, concurrency),
      store.readSnapshot(generation.snapshot, file),
    ]);
    lap('snapshot');
    pages = new ScratchFilePages(file, generation.snapshot.page_size);
    const result = {
      restoredTo: generation.snapshot.restorable_from_ms,
      applied: 0,
      ranges: 0,
      skipped: 0,
      segments: 0,
    };
    let stoppedEarly: RebuildResult['stoppedEarly'] = null;
    let previous: WalLink | null = null;
    const fetches = new Map<string, Promise<Fetched>>();
    const fetchStep = (step: Step): Promise<Fetched> => {
      const key = stepKey(step);
      let pending = fetches.get(key);
      if (!pending) {
        pending = (async (): Promise<Fetched> => {
          if (step.kind === 'range') {
            return { kind: 'range', manifest: step.manifest, plain: await store.readRange(step.manifest) };
          }
          const manifest = await store.segmentManifest(generation.generation, step.index);
          if (manifest === null) {
            throw new ReplicaObjectError(`segment ${step.index}`, 'missing');
          }
          // A segment wholly after the moment is never needed: its damage must not refuse an earlier moment.
          const plain = manifest.first_commit_ms > atMs ? null : await store.readSegment(manifest);
          return { kind: 'segment', manifest, plain };
        })();
        // Handled where it is awaited; this only keeps an early failure from being reported as unhandled.
        pending.catch(() => undefined);
        fetches.set(key, pending);
      }
      return pending;
    };
    for (let k = 0; k < steps.length; k++) {
      for (let ahead = k; ahead < Math.min(steps.length, k + concurrency); ahead++) {
        void fetchStep(steps[ahead]);
      }
      const step = steps[k];
      let fetched: Fetched;
      try {
        fetched = await fetchStep(step);
        lap('waitingForSegments');
      } catch (error) {
        if (step.kind === 'range') {
          // Only a shortcut: its segments are still there.
          result.skipped++;
          steps.splice(k, 1, ...segmentSteps(step.manifest.first_index, step.manifest.last_index));
          k--;
          continue;
        }
        const problem = error instanceof ReplicaObjectError ? error.problem : 'unreadable';
        stoppedEarly = { segment: step.index, problem };
        break;
      } finally {
        fetches.delete(stepKey(step));
      }
      if (fetched.kind === 'range') {
        const set = rangeProblem(previous, fetched.manifest, generation.snapshot.page_size) ?? tryDecode(fetched.plain);
        lap('checking');
        if (typeof set === 'string') {
          result.skipped++;
          steps.splice(k, 1, ...segmentSteps(fetched.manifest.first_index, fetched.manifest.last_index));
          k--;
          continue;
        }
        pages.applyPageSet(set);
        result.restoredTo = fetched.manifest.last_commit_ms;
        result.applied += fetched.manifest.commits;
        result.ranges++;
        previous = fetched.manifest.end;
        lap('applying');
        continue;
      }
      const { manifest, plain } = fetched;
      if (plain === null) {
        break;
      }
      const problem =
        manifest.cycle.page_size !== generation.snapshot.page_size
          ? 'of another page size'
          : chainProblem(previous, manifest, plain);
      lap('checking');
      if (problem !== null) {
        stoppedEarly = { segment: manifest.index, problem };
        break;
      }
      const headerBytes = manifest.start_offset === WAL_HEADER_SIZE ? WAL_HEADER_SIZE : 0;
      const kept = manifest.commits.filter((c) => c.at_ms <= atMs);
      for (const commit of kept) {
        result.restoredTo = commit.at_ms;
        result.applied++;
      }
      const lastEnd = kept.length > 0 ? kept[kept.length - 1].end : manifest.start_offset;
      const cut = headerBytes + (lastEnd - manifest.start_offset);
      applyFrames(pages, plain.subarray(headerBytes, cut), manifest.cycle.page_size);
      result.segments++;
      lap('applying');
      previous = { cycle: manifest.cycle, offset: manifest.end_offset, checksum: manifest.end_checksum };
      if (cut < plain.length) {
        break;
      }
    }
    pages.close();
    pages = null;
    if (stoppedEarly !== null && !options.acceptLastGood) {
      throw new ReplicaDamagedError(
        generation.generation,
        stoppedEarly.segment,
        stoppedEarly.problem,
        new Date(result.restoredTo),
      );
    }
    finishStandalone(file, options.admissionChecks !== true);
    lap('finishing');
    return {
      file,
      restoredTo: new Date(result.restoredTo),
      generation: generation.generation,
      commitsApplied: result.applied,
      rangesApplied: result.ranges,
      rangesSkipped: result.skipped,
      segmentsApplied: result.segments,
      stoppedEarly,
      timings,
    };
  } catch (error) {
    pages?.close();
    for (const leftover of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) {
      fs.rmSync(leftover, { force: true });
    }
    throw error;
  }
}

function tryDecode(plain: Buffer): ReturnType<typeof decodePageSet> | string {
  try {
    return decodePageSet(plain);
  } catch (error) {
    return (error as Error).message;
  }
}

/** Why a compacted range cannot follow `previous` (or start a generation), or null when the chain holds. */
function rangeProblem(previous: WalLink | null, range: RangeManifest, pageSize: number): string | null {
  if (range.page_size !== pageSize) {
    return 'of another page size';
  }
  return linkProblem(previous, range.start);
}

function linkProblem(previous: WalLink | null, start: WalLink): string | null {
  const atHeader = start.offset === WAL_HEADER_SIZE;
  if (previous === null) {
    return atHeader ? null : 'not the start of a WAL cycle';
  }
  if (sameCycle(previous.cycle, start.cycle)) {
    return start.offset !== previous.offset ||
      start.checksum[0] !== previous.checksum[0] ||
      start.checksum[1] !== previous.checksum[1]
      ? 'not continuous with the segment before it'
      : null;
  }
  return atHeader ? null : 'a new WAL cycle that does not start at its header';
}

/**
 * Why `manifest` cannot follow `previous` (or start a generation), or null when the chain holds. `frames`: `checksums`
 * re-validates every frame with SQLite's own checksums (the rebuild, which writes them); `layout` checks only that
 * the bytes have the manifest's length and a commit frame exactly at each commit the manifest names (the compactor,
 * off the shipper's thread: the bytes already matched the manifest's sha256, and the frames inside a range are
 * proven again by every rebuild that reads its segments, not by one that uses the range).
 */
export function chainProblem(
  previous: WalLink | null,
  manifest: SegmentManifest,
  plain: Buffer,
  frames: 'checksums' | 'layout' = 'checksums',
): string | null {
  const headerBytes = manifest.start_offset === WAL_HEADER_SIZE ? WAL_HEADER_SIZE : 0;
  const linked = linkProblem(previous, {
    cycle: manifest.cycle,
    offset: manifest.start_offset,
    checksum: manifest.start_checksum,
  });
  if (linked !== null) {
    return linked;
  }
  if (headerBytes > 0 && plain.subarray(0, WAL_HEADER_SIZE).toString('hex') !== manifest.cycle.header) {
    return 'a WAL header that does not match its manifest';
  }
  if (frames === 'layout') {
    return layoutProblem(manifest, plain, headerBytes);
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

function layoutProblem(manifest: SegmentManifest, plain: Buffer, headerBytes: number): string | null {
  const frameSize = FRAME_HEADER_SIZE + manifest.cycle.page_size;
  const length = manifest.end_offset - manifest.start_offset;
  if (plain.length - headerBytes !== length || length % frameSize !== 0 || manifest.commits.length === 0) {
    return 'frames of the wrong length';
  }
  let commitAt = 0;
  for (let offset = 0; offset < length; offset += frameSize) {
    const pages = plain.readUInt32BE(headerBytes + offset + 4);
    const commit = manifest.commits[commitAt] as SegmentManifest['commits'][number] | undefined;
    const endsCommit = commit !== undefined && manifest.start_offset + offset + frameSize === commit.end;
    if ((pages !== 0) !== endsCommit || (endsCommit && pages !== commit.db_pages)) {
      return 'commit frames that are not where its manifest says';
    }
    commitAt += endsCommit ? 1 : 0;
  }
  return commitAt === manifest.commits.length ? null : 'commit frames that are not where its manifest says';
}

/** journal_mode=DELETE (no -wal needed beside it) and quick_check, so the file stands alone and is proven. */
function finishStandalone(file: string, quickCheck: boolean): void {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = DELETE');
    if (!quickCheck) {
      return;
    }
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') {
      throw new Error(`The rebuilt database fails quick_check: ${String(check)}`);
    }
  } finally {
    db.close();
  }
}
