import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { applyFrames, PageSet } from './page-apply';
import { FORMAT, type RangeManifest, type SegmentManifest, sha256, type WalLink } from './replica-layout';
import { chainProblem } from './replica-rebuild';
import type { ReplicaStore } from './replica-store';
import { sealForReplica, SEGMENT_GZIP_LEVEL } from './shipper-io';
import { WAL_HEADER_SIZE } from './wal-reader';

const gzip = promisify(zlib.gzip);

/** Segments per compacted range: with one round a second, a minute of history becomes one object. */
export const RANGE_SEGMENTS = 60;
/** A group that failed this often (a damaged segment) is left to the segments themselves. */
const MAX_ATTEMPTS = 3;
/** Segments downloaded at once while compacting. */
const CONCURRENCY = 4;

async function encodeRange(plain: Buffer, recipients: readonly string[]): Promise<Buffer> {
  return sealForReplica(await gzip(plain, { level: SEGMENT_GZIP_LEVEL }), recipients);
}

/**
 * Compaction, as Litestream's levels do it: every aligned group of RANGE_SEGMENTS segments already in the bucket is
 * read back, proven (its sha256, the unbroken chain of manifests, a commit frame where each commit is), reduced to the last version of each page, and stored
 * once more as a compacted range beside them. A point-in-time rebuild then reads an hour as 60 objects instead of
 * 3,600; the segments stay, for the moments inside a range and in case a range is damaged. Off the shipper's path:
 * a failure here loses nothing and only leaves that rebuild slower.
 */
export class Compactor {
  private next: { generation: string; first: number; attempts: number } | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  rangesStored = 0;
  lastError: string | null = null;

  constructor(
    private readonly store: ReplicaStore,
    private readonly log: (level: 'log' | 'warn', message: string) => void,
    private readonly groupSize = RANGE_SEGMENTS,
  ) {}

  /** Segments through `stored` are in the bucket: compacts every complete group, one run at a time, in the background. */
  poke(stored: { generation: string; index: number } | null): void {
    if (stored === null || this.running !== null || this.stopped) {
      return;
    }
    this.running = this.catchUp(stored)
      .catch((error: unknown) => {
        this.lastError = error instanceof Error ? error.message : String(error);
        this.log('warn', `Replication compaction failed: ${this.lastError}`);
      })
      .finally(() => {
        this.running = null;
      });
  }

  /** Waits for a running compaction (tests, the benchmark). */
  async idle(): Promise<void> {
    while (this.running !== null) {
      await this.running;
    }
  }

  /** No new compaction starts; a running one stops at its next segment. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.idle();
  }

  private async catchUp(stored: { generation: string; index: number }): Promise<void> {
    if (this.next?.generation !== stored.generation) {
      this.next = { generation: stored.generation, first: await this.firstUncompacted(stored.generation), attempts: 0 };
    }
    const next = this.next;
    while (!this.stopped && next.first + this.groupSize - 1 <= stored.index) {
      const last = next.first + this.groupSize - 1;
      try {
        await this.compact(stored.generation, next.first, last);
        this.lastError = null;
      } catch (error) {
        if (++next.attempts < MAX_ATTEMPTS) {
          throw error;
        }
        this.log('warn', `Replication segments ${next.first}-${last} are left uncompacted: ${String(error)}`);
      }
      next.first = last + 1;
      next.attempts = 0;
    }
  }

  /** Where the contiguous compacted ranges of a generation end (after a restart, or for a new generation). */
  private async firstUncompacted(generation: string): Promise<number> {
    const listing = (await this.store.listGenerations()).find((l) => l.generation === generation);
    let first = 0;
    for (const range of listing?.ranges ?? []) {
      if (range.first === first && range.last - range.first + 1 === this.groupSize) {
        first = range.last + 1;
      }
    }
    return first;
  }

  /** Builds and stores the range of segments first..last of `generation`; returns its manifest. */
  async compact(generation: string, first: number, last: number): Promise<RangeManifest | null> {
    const fetch = async (index: number): Promise<{ manifest: SegmentManifest; plain: Buffer }> => {
      const manifest = await this.store.segmentManifest(generation, index);
      if (manifest === null) {
        throw new Error(`segment ${index} of ${generation} is missing`);
      }
      return { manifest, plain: await this.store.readSegment(manifest) };
    };
    const pending = new Map<number, Promise<{ manifest: SegmentManifest; plain: Buffer }>>();
    let set: PageSet | null = null;
    let start: WalLink | null = null;
    let previous: WalLink | null = null;
    let commits = 0;
    let firstCommitMs = 0;
    let lastCommitMs = 0;
    for (let index = first; index <= last; index++) {
      if (this.stopped) {
        return null;
      }
      for (let ahead = index; ahead <= Math.min(last, index + CONCURRENCY - 1); ahead++) {
        if (!pending.has(ahead)) {
          const fetched = fetch(ahead);
          fetched.catch(() => undefined);
          pending.set(ahead, fetched);
        }
      }
      const { manifest, plain } = await (pending.get(index) as Promise<{ manifest: SegmentManifest; plain: Buffer }>);
      pending.delete(index);
      const own: WalLink = { cycle: manifest.cycle, offset: manifest.start_offset, checksum: manifest.start_checksum };
      // The first segment's own start stands in for its predecessor: the rebuild checks the range's start link.
      const problem = chainProblem(previous ?? own, manifest, plain, 'layout');
      if (problem !== null) {
        throw new Error(`segment ${index} of ${generation} is ${problem}`);
      }
      set ??= new PageSet(manifest.cycle.page_size);
      if (manifest.cycle.page_size !== set.pageSize) {
        throw new Error(`segment ${index} of ${generation} changes the page size`);
      }
      applyFrames(set, plain.subarray(manifest.start_offset === WAL_HEADER_SIZE ? WAL_HEADER_SIZE : 0), set.pageSize);
      start ??= own;
      previous = { cycle: manifest.cycle, offset: manifest.end_offset, checksum: manifest.end_checksum };
      commits += manifest.commits.length;
      firstCommitMs = index === first ? manifest.first_commit_ms : firstCommitMs;
      lastCommitMs = manifest.last_commit_ms;
    }
    if (set === null || start === null || previous === null) {
      return null;
    }
    const plain = set.encode();
    const recipients = this.store.recipients;
    const bytes = await encodeRange(plain, recipients);
    const manifest: RangeManifest = {
      format: FORMAT,
      kind: 'range',
      generation,
      first_index: first,
      last_index: last,
      start,
      end: previous,
      first_commit_ms: firstCommitMs,
      last_commit_ms: lastCommitMs,
      commits,
      page_size: set.pageSize,
      pages: set.count,
      size: plain.length,
      sha256: sha256(plain),
      object_size: bytes.length,
      object_sha256: sha256(bytes),
      encrypted: recipients.length > 0,
    };
    await this.store.putRange(manifest, bytes);
    this.rangesStored++;
    return manifest;
  }
}
