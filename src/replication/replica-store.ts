import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import type { AgeCrypto } from '../offsite/age-crypto';
import type { OffsiteBucket } from '../offsite/offsite-bucket';
import {
  parseReplicaKey,
  parseRangeManifest,
  parseSegmentManifest,
  parseSnapshotManifest,
  rangeKey,
  type RangeManifest,
  rangeManifestKey,
  REPLICA_ROOT,
  segmentKey,
  segmentManifestKey,
  sha256,
  type SegmentManifest,
  snapshotKey,
  snapshotManifestKey,
  type SnapshotManifest,
} from './replica-layout';

const gunzip = promisify(zlib.gunzip);
const SNAPSHOT_CHUNK = 1024 * 1024;

/** A replica object that is missing, does not decrypt, decompress, or match its manifest. */
export class ReplicaObjectError extends Error {
  constructor(
    readonly key: string,
    readonly problem: 'missing' | 'unreadable' | 'mismatch',
  ) {
    super(`Replica object ${key} is ${problem}`);
    this.name = 'ReplicaObjectError';
  }
}

export interface GenerationListing {
  generation: string;
  hasSnapshot: boolean;
  hasSnapshotManifest: boolean;
  /** Segment indexes with both the object and its manifest, ascending. */
  segments: number[];
  /** Compacted ranges with both the object and its manifest, by first index. */
  ranges: { first: number; last: number }[];
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function tap(onChunk: (chunk: Buffer) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
      onChunk(chunk);
      callback(null, chunk);
    },
  });
}

/** Reads and writes the replica's objects through the off-site bucket and the off-site age recipients. */
export class ReplicaStore {
  constructor(
    private readonly bucket: OffsiteBucket,
    private readonly crypto: AgeCrypto,
  ) {}

  get encrypted(): boolean {
    return this.crypto.canEncrypt;
  }

  /** Segments are encrypted to these (none: plaintext allowed and none set). */
  get recipients(): readonly string[] {
    return this.crypto.canEncrypt ? this.crypto.recipients : [];
  }

  /**
   * Stores a segment and then its manifest. Keys are unique by construction (a random generation id and an index
   * that only grows); on a retry after an answer that never came, the manifest is looked up first so the segment is
   * never written twice (s3rver ignores If-None-Match, so this is checked here too).
   */
  async putSegment(manifest: SegmentManifest, bytes: Buffer, retry: boolean): Promise<void> {
    const manifestKey = segmentManifestKey(manifest.generation, manifest.index);
    if (retry) {
      const existing = await this.bucket.getSmall(manifestKey);
      if (existing !== null) {
        const stored = parseSegmentManifest(existing.toString('utf8'));
        if (stored?.object_sha256 === manifest.object_sha256) {
          return;
        }
        throw new ReplicaObjectError(manifestKey, 'mismatch');
      }
    }
    const key = segmentKey(manifest.generation, manifest.index, manifest.encrypted);
    const outcome = await this.bucket.putSmall(key, bytes, 'application/octet-stream');
    if (outcome === 'exists' && !retry) {
      throw new ReplicaObjectError(key, 'mismatch');
    }
    await this.bucket.putSmall(manifestKey, Buffer.from(JSON.stringify(manifest, null, 2)), 'application/json');
  }

  /** Streams a snapshot file (a standalone SQLite database) into the bucket: gzip, age, then its manifest. */
  async putSnapshot(
    file: string,
    manifest: Omit<SnapshotManifest, 'sha256' | 'object_sha256' | 'object_size' | 'size' | 'encrypted'>,
    retry = false,
  ): Promise<SnapshotManifest> {
    const manifestKey = snapshotManifestKey(manifest.generation);
    if (retry) {
      const existing = await this.bucket.getSmall(manifestKey);
      if (existing !== null) {
        // Stored by the attempt whose answer never came: the manifest is written only after the whole object.
        const stored = parseSnapshotManifest(existing.toString('utf8'));
        if (stored === null) {
          throw new ReplicaObjectError(manifestKey, 'mismatch');
        }
        return stored;
      }
      // An object without its manifest belongs to no restorable generation: it is replaced, never trusted.
      await this.bucket.delete(snapshotKey(manifest.generation, this.encrypted));
    }
    const plainHash = createHash('sha256');
    const objectHash = createHash('sha256');
    let size = 0;
    let objectSize = 0;
    const plain = fs.createReadStream(file).pipe(
      tap((chunk) => {
        plainHash.update(chunk);
        size += chunk.length;
      }),
    );
    const compressed = plain.pipe(zlib.createGzip());
    const body = (this.encrypted ? await this.crypto.encrypt(compressed) : compressed).pipe(
      tap((chunk) => {
        objectHash.update(chunk);
        objectSize += chunk.length;
      }),
    );
    const key = snapshotKey(manifest.generation, this.encrypted);
    const outcome = await this.bucket.uploadStream(key, body, {
      expectedSize: fs.statSync(file).size,
      contentType: 'application/octet-stream',
    });
    if (outcome === 'exists') {
      throw new ReplicaObjectError(key, 'mismatch');
    }
    const full: SnapshotManifest = {
      ...manifest,
      size,
      sha256: plainHash.digest('hex'),
      object_size: objectSize,
      object_sha256: objectHash.digest('hex'),
      encrypted: this.encrypted,
    };
    await this.bucket.putSmall(manifestKey, Buffer.from(JSON.stringify(full, null, 2)), 'application/json');
    return full;
  }

  /** Every generation under `replica/`, oldest first, from one listing. */
  async listGenerations(): Promise<GenerationListing[]> {
    const objects = await this.bucket.list();
    const byGeneration = new Map<
      string,
      {
        snapshot: boolean;
        manifest: boolean;
        objects: Set<number>;
        jsons: Set<number>;
        rangeObjects: Set<string>;
        rangeJsons: Set<string>;
      }
    >();
    for (const object of objects) {
      if (!object.name.startsWith(REPLICA_ROOT)) {
        continue;
      }
      const parsed = parseReplicaKey(object.name);
      if (parsed === null) {
        continue;
      }
      let entry = byGeneration.get(parsed.generation);
      if (!entry) {
        entry = {
          snapshot: false,
          manifest: false,
          objects: new Set(),
          jsons: new Set(),
          rangeObjects: new Set(),
          rangeJsons: new Set(),
        };
        byGeneration.set(parsed.generation, entry);
      }
      if (parsed.kind === 'snapshot') {
        entry.snapshot = true;
      } else if (parsed.kind === 'snapshot-manifest') {
        entry.manifest = true;
      } else if (parsed.kind === 'segment') {
        entry.objects.add(parsed.index);
      } else if (parsed.kind === 'segment-manifest') {
        entry.jsons.add(parsed.index);
      } else if (parsed.kind === 'range') {
        entry.rangeObjects.add(`${parsed.first}-${parsed.last}`);
      } else if (parsed.kind === 'range-manifest') {
        entry.rangeJsons.add(`${parsed.first}-${parsed.last}`);
      }
    }
    return [...byGeneration.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([generation, entry]) => ({
        generation,
        hasSnapshot: entry.snapshot,
        hasSnapshotManifest: entry.manifest,
        segments: [...entry.objects].filter((i) => entry.jsons.has(i)).sort((a, b) => a - b),
        ranges: [...entry.rangeObjects]
          .filter((r) => entry.rangeJsons.has(r))
          .map((r) => {
            const [first, last] = r.split('-').map(Number);
            return { first, last };
          })
          .sort((a, b) => a.first - b.first || a.last - b.last),
      }));
  }

  async snapshotManifest(generation: string): Promise<SnapshotManifest | null> {
    const text = await this.bucket.getSmall(snapshotManifestKey(generation));
    return text === null ? null : parseSnapshotManifest(text.toString('utf8'));
  }

  async segmentManifest(generation: string, index: number): Promise<SegmentManifest | null> {
    const text = await this.bucket.getSmall(segmentManifestKey(generation, index));
    const manifest = text === null ? null : parseSegmentManifest(text.toString('utf8'));
    return manifest !== null && manifest.generation === generation && manifest.index === index ? manifest : null;
  }

  async rangeManifest(generation: string, first: number, last: number): Promise<RangeManifest | null> {
    const text = await this.bucket.getSmall(rangeManifestKey(generation, first, last));
    const manifest = text === null ? null : parseRangeManifest(text.toString('utf8'));
    return manifest !== null &&
      manifest.generation === generation &&
      manifest.first_index === first &&
      manifest.last_index === last
      ? manifest
      : null;
  }

  /** Stores a compacted range (already gzip + age), then its manifest: created only if absent, never replaced. */
  async putRange(manifest: RangeManifest, bytes: Buffer): Promise<'created' | 'exists'> {
    const key = rangeKey(manifest.generation, manifest.first_index, manifest.last_index, manifest.encrypted);
    const manifestKey = rangeManifestKey(manifest.generation, manifest.first_index, manifest.last_index);
    if ((await this.bucket.putSmall(key, bytes, 'application/octet-stream')) === 'exists') {
      // Another compaction of the same segments stored it first; its own manifest describes its own bytes.
      return 'exists';
    }
    return this.bucket.putSmall(manifestKey, Buffer.from(JSON.stringify(manifest, null, 2)), 'application/json');
  }

  /** The plain page set of a compacted range, checked against its manifest's sha256. */
  async readRange(manifest: RangeManifest): Promise<Buffer> {
    const key = rangeKey(manifest.generation, manifest.first_index, manifest.last_index, manifest.encrypted);
    return this.readPlain(key, manifest);
  }

  /** The plain segment, checked against its manifest's sha256. */
  async readSegment(manifest: SegmentManifest): Promise<Buffer> {
    return this.readPlain(segmentKey(manifest.generation, manifest.index, manifest.encrypted), manifest);
  }

  private async readPlain(
    key: string,
    manifest: { encrypted: boolean; sha256: string; size: number },
  ): Promise<Buffer> {
    const stream = await this.bucket.getStream(key);
    if (stream === null) {
      throw new ReplicaObjectError(key, 'missing');
    }
    let plain: Buffer;
    try {
      const stored = await collect(stream);
      const compressed = manifest.encrypted
        ? await collect(await this.crypto.decrypt(Readable.from([stored])))
        : stored;
      plain = await gunzip(compressed);
    } catch {
      throw new ReplicaObjectError(key, 'unreadable');
    }
    if (sha256(plain) !== manifest.sha256 || plain.length !== manifest.size) {
      throw new ReplicaObjectError(key, 'mismatch');
    }
    return plain;
  }

  /** Downloads, decrypts and decompresses the snapshot into `dest`, checked against its manifest's sha256. */
  async readSnapshot(manifest: SnapshotManifest, dest: string): Promise<void> {
    const key = snapshotKey(manifest.generation, manifest.encrypted);
    const stream = await this.bucket.getStream(key);
    if (stream === null) {
      throw new ReplicaObjectError(key, 'missing');
    }
    const hash = createHash('sha256');
    try {
      const plain = manifest.encrypted ? await this.crypto.decrypt(stream) : stream;
      // Large buffers: a 1 GiB snapshot in 16 KiB steps costs seconds of callbacks and collections.
      await pipeline(
        plain,
        zlib.createGunzip({ chunkSize: SNAPSHOT_CHUNK }),
        tap((chunk) => hash.update(chunk)),
        fs.createWriteStream(dest, { mode: 0o600, highWaterMark: SNAPSHOT_CHUNK }),
      );
    } catch {
      throw new ReplicaObjectError(key, 'unreadable');
    }
    if (hash.digest('hex') !== manifest.sha256) {
      throw new ReplicaObjectError(key, 'mismatch');
    }
  }

  /** Deletes every object of a generation (retention). */
  async deleteGeneration(listing: GenerationListing): Promise<void> {
    const keys = [
      ...listing.segments.flatMap((i) => [
        segmentKey(listing.generation, i, true),
        segmentKey(listing.generation, i, false),
        segmentManifestKey(listing.generation, i),
      ]),
      ...listing.ranges.flatMap((r) => [
        rangeKey(listing.generation, r.first, r.last, true),
        rangeKey(listing.generation, r.first, r.last, false),
        rangeManifestKey(listing.generation, r.first, r.last),
      ]),
      snapshotKey(listing.generation, true),
      snapshotKey(listing.generation, false),
      snapshotManifestKey(listing.generation),
    ];
    for (const key of keys) {
      await this.bucket.delete(key);
    }
  }
}
