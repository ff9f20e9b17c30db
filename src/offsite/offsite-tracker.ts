import { Inject, Injectable, Logger } from '@nestjs/common';
import { Clock } from '../common/clock';
import type { OffsiteCopyView, OffsiteProgressView, RemoteCopyTracker } from '../common/remote-copies';
import type { OffsiteBucket } from './offsite-bucket';
import { OFFSITE_BUCKET, reasonOf } from './offsite-common';
import { OffsiteOutbox } from './offsite-outbox';
import { entriesOf, ManifestReader, newestValid, type RemoteEntry } from './remote-catalog';

type NewestCopy = NonNullable<OffsiteProgressView['newestCopy']>;

/**
 * What backups, health and metrics read of off-site copies: the outbox (this machine's uploads) together with
 * what the bucket was last seen to hold. After a bare-machine recovery the outbox knows nothing of the copies in
 * the bucket; health must still see the one made minutes ago. The bucket is looked at by the worker (start-up,
 * each retention pass) and by the remote routes, never by a health request.
 */
@Injectable()
export class OffsiteTracker implements RemoteCopyTracker {
  private readonly logger = new Logger(OffsiteTracker.name);
  private newest: NewestCopy | null = null;
  /** When the bucket was last listed (Unix seconds); null until it has been. */
  private seenAt: number | null = null;
  /** Copies this machine uploaded that the bucket no longer holds (as last listed, or deleted by retention since). */
  private gone = new Set<string>();

  constructor(
    @Inject(OFFSITE_BUCKET) private readonly bucket: OffsiteBucket | null,
    private readonly outbox: OffsiteOutbox,
    private readonly clock: Clock,
  ) {}

  copyOf(name: string): OffsiteCopyView {
    const copy = this.outbox.copyOf(name);
    return copy.status === 'uploaded' && this.gone.has(name) ? { ...copy, in_bucket: false } : copy;
  }

  /** Off-site retention deleted this copy: it is no longer one to count on. */
  deleted(name: string): void {
    this.gone.add(name);
  }

  awaitingUpload(): ReadonlySet<string> {
    return this.outbox.awaitingUpload();
  }

  progress(): OffsiteProgressView {
    const local = this.outbox.progress();
    if (this.seenAt === null) {
      return local;
    }
    const bucket = this.newest;
    const lastUploadedAt = bucket === null ? local.lastUploadedAt : maxOf(local.lastUploadedAt, bucket.storedAt);
    if (local.lastUploadedAt !== null && local.lastUploadedAt > this.seenAt) {
      // An upload since the last look: the outbox is ahead of what was seen.
      return {
        ...local,
        lastUploadedAt,
        newestUploadedBackupAt:
          bucket === null ? local.newestUploadedBackupAt : maxOf(local.newestUploadedBackupAt, bucket.createdAt),
        newestCopy: bucket,
      };
    }
    // The bucket as last seen is the truth: a copy the outbox calls uploaded but the bucket no longer holds (deleted
    // by retention or by hand) does not count.
    return { ...local, lastUploadedAt, newestUploadedBackupAt: bucket?.createdAt ?? null, newestCopy: bucket };
  }

  /** One LIST (and a manifest read for a copy this machine did not make): what the bucket holds now. Never throws. */
  async refresh(): Promise<void> {
    if (this.bucket === null) {
      return;
    }
    try {
      const entries = entriesOf(await this.bucket.list(), this.clock.nowMs());
      await this.seen(entries, new ManifestReader(this.bucket, this.outbox.knownCopies()));
    } catch (error) {
      this.logger.warn(`Could not read what the bucket holds: ${reasonOf(error)}`);
    }
  }

  /**
   * Notes the newest copy with a valid manifest among `entries` (one whole LIST, newest first), and which of this
   * machine's uploaded copies the bucket no longer holds.
   */
  async seen(entries: readonly RemoteEntry[], reader: ManifestReader): Promise<void> {
    const listed = new Set(entries.map((entry) => entry.objectName));
    this.gone = new Set(
      [...reader.known].filter(([objectName]) => !listed.has(objectName)).map(([, copy]) => copy.name),
    );
    const found = await newestValid(
      entries.filter((entry) => !entry.future),
      reader,
    );
    this.seenAt = this.clock.nowSeconds();
    this.newest =
      found === null
        ? null
        : {
            name: found.entry.name,
            createdAt: Math.floor(found.entry.createdAtMs / 1000),
            storedAt: Math.floor(found.entry.storedAtMs / 1000),
            checkedAt: this.clock.nowSeconds(),
          };
  }
}

function maxOf(a: number | null, b: number): number {
  return a === null ? b : Math.max(a, b);
}
