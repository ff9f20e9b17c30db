import { Clock } from '../common/clock';
import type { OffsiteProgressView } from '../common/remote-copies';
import type { OffsiteBucket } from './offsite-bucket';
import type { OffsiteOutbox } from './offsite-outbox';
import { OffsiteTracker } from './offsite-tracker';
import { entriesOf, ManifestReader } from './remote-catalog';

const NOW = Date.UTC(2026, 5, 1, 12, 0, 0);
const T = NOW / 1000;

class FixedClock extends Clock {
  ms = NOW;
  override now(): Date {
    return new Date(this.ms);
  }
}

function outboxSaying(progress: Partial<OffsiteProgressView>): OffsiteOutbox {
  const base: OffsiteProgressView = {
    configured: true,
    pending: 0,
    lastUploadedAt: null,
    failingSince: null,
    newestBackupAt: null,
    newestUploadedBackupAt: null,
    oldestWaitingSince: null,
    newestCopy: null,
  };
  return {
    progress: () => ({ ...base, ...progress }),
    knownCopies: () => new Map(),
  } as unknown as OffsiteOutbox;
}

const bucket = {} as OffsiteBucket;

describe(OffsiteTracker.name, () => {
  it('should count the copy the bucket holds after a recovery, when the outbox knows nothing', async () => {
    const clock = new FixedClock();
    const tracker = new OffsiteTracker(bucket, outboxSaying({}), clock);
    expect(tracker.progress().newestUploadedBackupAt).toBeNull();
    const entries = entriesOf(
      [
        { name: 'mc-backup-2026-06-01_11-57-00.db', size: 10, lastModifiedMs: NOW - 60_000 },
        { name: 'mc-backup-2026-06-01_11-57-00.db.json', size: 300, lastModifiedMs: NOW - 60_000 },
      ],
      NOW,
    );
    const known = new Map([[entries[0].objectName, { name: entries[0].name, sha256: 'a'.repeat(64), size: 10 }]]);
    await tracker.seen(entries, new ManifestReader(bucket, known));
    expect(tracker.progress()).toMatchObject({
      lastUploadedAt: T - 60,
      newestUploadedBackupAt: T - 180,
      newestCopy: { name: 'mc-backup-2026-06-01_11-57-00.db' },
    });
  });

  it('should not count an upload the bucket no longer holds, once it has looked since', async () => {
    const clock = new FixedClock();
    const outbox = outboxSaying({ lastUploadedAt: T - 10, newestUploadedBackupAt: T - 20, newestBackupAt: T - 20 });
    const tracker = new OffsiteTracker(bucket, outbox, clock);
    expect(tracker.progress().newestUploadedBackupAt).toBe(T - 20);
    await tracker.seen([], new ManifestReader(bucket));
    expect(tracker.progress()).toMatchObject({ newestUploadedBackupAt: null, newestCopy: null });
    // An upload after that look counts again until the next look.
    clock.ms = NOW - 15_000;
    await tracker.seen([], new ManifestReader(bucket));
    expect(tracker.progress().newestUploadedBackupAt).toBe(T - 20);
  });
});
