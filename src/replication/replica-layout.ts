import { createHash, randomBytes } from 'node:crypto';
import type { WalCommit, WalPosition, WalRead } from './wal-reader';

/**
 * The replica's object layout under `<OFFSITE_S3_PREFIX>replica/` (docs/replication.md describes it for operators):
 *
 *   replica/<generation>/snapshot.db.gz.age    the generation's full database (gzip, then age)
 *   replica/<generation>/snapshot.json         its manifest (SnapshotManifest)
 *   replica/<generation>/wal/<index>.wal.gz.age   WAL frames, whole commits only (gzip, then age)
 *   replica/<generation>/wal/<index>.json         its manifest (SegmentManifest)
 *   replica/<generation>/pages/<first>-<last>.pages.gz.age   segments first..last compacted (gzip, then age):
 *                                                            the last version of each page they wrote
 *   replica/<generation>/pages/<first>-<last>.json           its manifest (RangeManifest)
 *
 * A compacted range is only a shortcut: the segments it covers stay, and a rebuild that cannot use the range
 * (damaged, or a moment inside it) reads them instead.
 * Generation ids and indexes sort as text in the order they were made. `.age` is absent when
 * OFFSITE_ALLOW_PLAINTEXT is on and no recipient is configured. Nothing here is ever overwritten.
 */

export const REPLICA_ROOT = 'replica/';

/** Hex sha256, as every replica manifest records its object's and its plain content's. */
export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
export const FORMAT = 1;
const GENERATION_SHAPE = /^g\d{17}-[0-9a-f]{8}$/;
const INDEX_DIGITS = 10;

/** A new generation id: `g` + UTC time to the millisecond + 8 random hex digits (sortable, unique). */
export function newGenerationId(nowMs: number): string {
  const stamp = new Date(nowMs).toISOString().replace(/[-:TZ.]/g, '');
  return `g${stamp}-${randomBytes(4).toString('hex')}`;
}

export function isGenerationId(text: string): boolean {
  return GENERATION_SHAPE.test(text);
}

export function snapshotKey(generation: string, encrypted: boolean): string {
  return `${REPLICA_ROOT}${generation}/snapshot.db.gz${encrypted ? '.age' : ''}`;
}

export function snapshotManifestKey(generation: string): string {
  return `${REPLICA_ROOT}${generation}/snapshot.json`;
}

export function segmentKey(generation: string, index: number, encrypted: boolean): string {
  return `${REPLICA_ROOT}${generation}/wal/${String(index).padStart(INDEX_DIGITS, '0')}.wal.gz${encrypted ? '.age' : ''}`;
}

export function segmentManifestKey(generation: string, index: number): string {
  return `${REPLICA_ROOT}${generation}/wal/${String(index).padStart(INDEX_DIGITS, '0')}.json`;
}

function rangeStem(generation: string, first: number, last: number): string {
  const pad = (n: number): string => String(n).padStart(INDEX_DIGITS, '0');
  return `${REPLICA_ROOT}${generation}/pages/${pad(first)}-${pad(last)}`;
}

export function rangeKey(generation: string, first: number, last: number, encrypted: boolean): string {
  return `${rangeStem(generation, first, last)}.pages.gz${encrypted ? '.age' : ''}`;
}

export function rangeManifestKey(generation: string, first: number, last: number): string {
  return `${rangeStem(generation, first, last)}.json`;
}

/** What a key under `replica/` is, or null for anything else. */
export function parseReplicaKey(
  key: string,
):
  | { generation: string; kind: 'snapshot' | 'snapshot-manifest' }
  | { generation: string; kind: 'segment' | 'segment-manifest'; index: number }
  | { generation: string; kind: 'range' | 'range-manifest'; first: number; last: number }
  | null {
  const range = /^replica\/([^/]+)\/pages\/(\d{10})-(\d{10})\.(json|pages\.gz(?:\.age)?)$/.exec(key);
  if (range !== null) {
    return isGenerationId(range[1])
      ? {
          generation: range[1],
          kind: range[4] === 'json' ? 'range-manifest' : 'range',
          first: Number(range[2]),
          last: Number(range[3]),
        }
      : null;
  }
  const match =
    /^replica\/([^/]+)\/(?:(snapshot)\.(json|db\.gz(?:\.age)?)|wal\/(\d{10})\.(json|wal\.gz(?:\.age)?))$/.exec(key);
  if (match === null || !isGenerationId(match[1])) {
    return null;
  }
  if (match[2] === 'snapshot') {
    return { generation: match[1], kind: match[3] === 'json' ? 'snapshot-manifest' : 'snapshot' };
  }
  return { generation: match[1], kind: match[5] === 'json' ? 'segment-manifest' : 'segment', index: Number(match[4]) };
}

/** A WAL cycle: one pair of salts, from its 32-byte header to the next restart. */
export interface CycleInfo {
  salt1: number;
  salt2: number;
  checkpoint_seq: number;
  page_size: number;
  big_endian: boolean;
  /** Hex of the cycle's WAL header. */
  header: string;
}

export interface SegmentCommit {
  /** WAL byte offset just past this commit's last frame. */
  end: number;
  /** When the shipper read this commit, Unix ms (our clock). */
  at_ms: number;
  db_pages: number;
}

export interface SegmentManifest {
  format: number;
  kind: 'segment';
  generation: string;
  index: number;
  cycle: CycleInfo;
  /** WAL byte range [start_offset, end_offset). A segment starting at 32 begins with the cycle's header. */
  start_offset: number;
  end_offset: number;
  start_checksum: [number, number];
  end_checksum: [number, number];
  first_commit_ms: number;
  last_commit_ms: number;
  commits: SegmentCommit[];
  /** The plain segment (what `age -d | gunzip` gives): size and sha256. */
  size: number;
  sha256: string;
  /** The stored object's bytes. */
  object_size: number;
  object_sha256: string;
  encrypted: boolean;
}

/** Where a run of WAL bytes starts or ends: what the next segment must continue from. */
export interface WalLink {
  cycle: CycleInfo;
  offset: number;
  checksum: [number, number];
}

/** Segments first..last compacted into one page set (page-apply.ts): a shortcut to the state after `last`. */
export interface RangeManifest {
  format: number;
  kind: 'range';
  generation: string;
  first_index: number;
  last_index: number;
  /** Where the first segment started and the last one ended, so the chain can be checked across the range. */
  start: WalLink;
  end: WalLink;
  first_commit_ms: number;
  last_commit_ms: number;
  commits: number;
  page_size: number;
  pages: number;
  /** The plain page set (what `age -d | gunzip` gives): size and sha256. */
  size: number;
  sha256: string;
  object_size: number;
  object_sha256: string;
  encrypted: boolean;
}

export function parseRangeManifest(text: string): RangeManifest | null {
  try {
    const value: unknown = JSON.parse(text);
    if (
      !isObject(value) ||
      value.kind !== 'range' ||
      typeof value.first_index !== 'number' ||
      typeof value.last_index !== 'number' ||
      !isObject(value.start) ||
      !isObject(value.end) ||
      !isObject(value.start.cycle) ||
      !isObject(value.end.cycle) ||
      typeof value.last_commit_ms !== 'number' ||
      typeof value.commits !== 'number' ||
      typeof value.sha256 !== 'string'
    ) {
      return null;
    }
    return value as unknown as RangeManifest;
  } catch {
    return null;
  }
}

export interface SnapshotManifest {
  format: number;
  kind: 'snapshot';
  generation: string;
  /** Why this generation began (`start`, `scheduled`, `manual`, `wal_reset`, `restore` …). */
  reason: string;
  created_ms: number;
  /**
   * The earliest time this generation can be rebuilt for: the shipper's first read after the snapshot was complete,
   * so every frame the snapshot may contain is in a segment observed at or before it.
   */
  restorable_from_ms: number;
  /** The generation this one took over from without a gap, and until when that one holds every commit. */
  continues: { generation: string; through_ms: number } | null;
  page_size: number;
  size: number;
  sha256: string;
  object_size: number;
  object_sha256: string;
  encrypted: boolean;
}

export function cycleOf(position: WalPosition): CycleInfo {
  return {
    salt1: position.salt1,
    salt2: position.salt2,
    checkpoint_seq: position.checkpointSeq,
    page_size: position.pageSize,
    big_endian: position.bigEndian,
    header: position.header,
  };
}

export function positionAt(cycle: CycleInfo, offset: number, checksum: [number, number]): WalPosition {
  return {
    salt1: cycle.salt1,
    salt2: cycle.salt2,
    checkpointSeq: cycle.checkpoint_seq,
    pageSize: cycle.page_size,
    bigEndian: cycle.big_endian,
    header: cycle.header,
    offset,
    checksum1: checksum[0],
    checksum2: checksum[1],
  };
}

export function commitsAt(commits: WalCommit[], atMs: number): SegmentCommit[] {
  return commits.map((c) => ({ end: c.end, at_ms: atMs, db_pages: c.dbPages }));
}

/** The manifest of a segment holding `read` (the commits after `from`), all observed at `atMs`. */
export function segmentManifest(
  generation: string,
  index: number,
  from: WalPosition,
  read: Pick<WalRead, 'commits' | 'next'>,
  atMs: number,
  object: { size: number; sha256: string; bytes: Buffer; objectSha256: string; encrypted: boolean },
): SegmentManifest {
  return {
    format: FORMAT,
    kind: 'segment',
    generation,
    index,
    cycle: cycleOf(from),
    start_offset: from.offset,
    end_offset: read.next.offset,
    start_checksum: [from.checksum1, from.checksum2],
    end_checksum: [read.next.checksum1, read.next.checksum2],
    first_commit_ms: atMs,
    last_commit_ms: atMs,
    commits: commitsAt(read.commits, atMs),
    size: object.size,
    sha256: object.sha256,
    object_size: object.bytes.length,
    object_sha256: object.objectSha256,
    encrypted: object.encrypted,
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A manifest read back from the bucket, checked for the fields a rebuild relies on; null when malformed. */
export function parseSegmentManifest(text: string): SegmentManifest | null {
  try {
    const value: unknown = JSON.parse(text);
    if (
      !isObject(value) ||
      value.kind !== 'segment' ||
      typeof value.index !== 'number' ||
      !isObject(value.cycle) ||
      typeof value.start_offset !== 'number' ||
      typeof value.end_offset !== 'number' ||
      !Array.isArray(value.commits) ||
      value.commits.length === 0 ||
      typeof value.sha256 !== 'string' ||
      typeof value.last_commit_ms !== 'number'
    ) {
      return null;
    }
    return value as unknown as SegmentManifest;
  } catch {
    return null;
  }
}

export function parseSnapshotManifest(text: string): SnapshotManifest | null {
  try {
    const value: unknown = JSON.parse(text);
    if (
      !isObject(value) ||
      value.kind !== 'snapshot' ||
      typeof value.restorable_from_ms !== 'number' ||
      typeof value.sha256 !== 'string' ||
      typeof value.page_size !== 'number'
    ) {
      return null;
    }
    return value as unknown as SnapshotManifest;
  } catch {
    return null;
  }
}
