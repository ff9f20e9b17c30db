import { Inject, Injectable, Logger } from '@nestjs/common';
import { AuditActor, AuditService, SYSTEM_ACTORS } from '../audit/audit.service';
import { BACKUP_PREFIX } from '../backups/backup-name';
import { Clock } from '../common/clock';
import type { RemoteManifest } from './remote-objects';
import { SettingsService } from '../settings/settings.service';
import type { OffsiteBucket } from './offsite-bucket';
import { OFFSITE_BUCKET, reasonOf } from './offsite-common';
import { OffsiteOutbox } from './offsite-outbox';
import { OffsiteTracker } from './offsite-tracker';
import { entriesOf, ManifestReader, type RemoteEntry } from './remote-catalog';
import { manifestObjectName } from './remote-objects';

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Which copies to delete, newest first as {@link entriesOf} orders them (a name later than now counts as older
 * than every real one): beyond `count`, or older than `maxAgeDays` except the newest. `keep` is never chosen.
 */
export function selectRemoteForPruning(
  candidates: readonly RemoteEntry[],
  rule: { count: number; maxAgeDays: number; nowMs: number; keep?: string },
): RemoteEntry[] {
  return candidates.filter((entry, index) => {
    if (entry.name === rule.keep) {
      return false;
    }
    if (index >= rule.count) {
      return true;
    }
    return index > 0 && rule.maxAgeDays > 0 && rule.nowMs - entry.createdAtMs > rule.maxAgeDays * DAY_MS;
  });
}

/**
 * General.offsite_retention_count / _days on the `mc-backup-…` copies under the prefix, never the newest: one
 * LIST and the deletes it needs. Only copies with a valid manifest take part: an object without one (an upload
 * in progress on another machine, or something that is not a copy at all) is neither counted nor deleted.
 * Deleting a local backup never comes here, and this never touches local files.
 */
@Injectable()
export class BucketRetention {
  private readonly logger = new Logger(BucketRetention.name);
  private readonly manifests = new Map<string, RemoteManifest | null>();
  private readonly warned = new Set<string>();

  constructor(
    @Inject(OFFSITE_BUCKET) private readonly bucket: OffsiteBucket | null,
    private readonly outbox: OffsiteOutbox,
    private readonly tracker: OffsiteTracker,
    private readonly audit: AuditService,
    private readonly settings: SettingsService,
    private readonly clock: Clock,
  ) {}

  /**
   * `keep` is the copy just uploaded: never deleted by its own upload's pass. A delete the bucket refuses (Object
   * Lock: AccessDenied) is logged, audited and skipped; it does not stop the others. Never throws. Returns the
   * backups whose objects were deleted.
   */
  async prune(options: { actor?: AuditActor; keep?: string } = {}): Promise<string[]> {
    const pruned: string[] = [];
    if (this.bucket === null) {
      return pruned;
    }
    const actor = options.actor ?? SYSTEM_ACTORS.system;
    try {
      const count = await this.settings.getInt('general.offsite_retention_count');
      const maxAgeDays = await this.settings.getInt('general.offsite_retention_days');
      const nowMs = this.clock.nowMs();
      const entries = entriesOf(await this.bucket.list(), nowMs);
      const reader = new ManifestReader(this.bucket, this.outbox.knownCopies(), this.manifests);
      await this.tracker.seen(entries, reader);
      const candidates: RemoteEntry[] = [];
      for (const entry of entries) {
        if (!entry.name.startsWith(BACKUP_PREFIX) || !entry.hasManifest) {
          continue;
        }
        if ((await reader.valid(entry)) === null) {
          this.warnOnce(entry.name, 'no valid manifest for the object; left alone, not counted');
          continue;
        }
        if (entry.future) {
          this.warnOnce(entry.name, 'named later than now (a clock was ahead); counted as older than every other copy');
        }
        candidates.push(entry);
      }
      const doomed = selectRemoteForPruning(candidates, { count, maxAgeDays, nowMs, keep: options.keep });
      for (const entry of doomed) {
        const keys = [entry.objectName, manifestObjectName(entry.name)];
        if (await this.deleteBackup(entry.name, keys, actor, count, maxAgeDays)) {
          this.tracker.deleted(entry.name);
          pruned.push(entry.name);
        }
      }
    } catch (error) {
      this.logger.warn(`Off-site retention failed: ${reasonOf(error)}`);
    }
    return pruned;
  }

  private warnOnce(name: string, why: string): void {
    if (!this.warned.has(name)) {
      this.warned.add(name);
      this.logger.warn(`Off-site retention: ${name}: ${why}`);
    }
  }

  /** Deletes one backup's keys and audits it; false when the bucket refused any of them. */
  private async deleteBackup(
    name: string,
    keys: readonly string[],
    actor: AuditActor,
    count: number,
    maxAgeDays: number,
  ): Promise<boolean> {
    const deleted: string[] = [];
    const locked: string[] = [];
    for (const key of keys) {
      if ((await this.bucket!.delete(key)) === 'deleted') {
        deleted.push(key);
      } else {
        locked.push(key);
      }
    }
    if (locked.length > 0) {
      this.logger.warn(`Off-site retention: the bucket refused to delete ${name} (Object Lock?); skipped`);
    }
    await this.audit.record({
      action: 'offsite_prune',
      actor,
      targetType: 'backup',
      targetId: name,
      detail: { name, deleted, refused: locked, retention_count: count, retention_days: maxAgeDays },
    });
    return locked.length === 0;
  }
}
