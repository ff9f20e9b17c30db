import { Inject, Injectable, Logger } from '@nestjs/common';
import { AuditActor, AuditService, SYSTEM_ACTORS } from '../audit/audit.service';
import { parseBackupName } from '../backups/backup-name';
import { selectForPruning } from '../backups/retention';
import { Clock } from '../common/clock';
import { SettingsService } from '../settings/settings.service';
import type { OffsiteBucket } from './offsite-bucket';
import { OFFSITE_BUCKET, reasonOf } from './offsite-common';
import { backupNameOfObject, manifestObjectName } from './remote-objects';

/**
 * General.offsite_retention_count / _days on the `mc-backup-…` objects under the prefix, never the newest: one
 * LIST and the deletes it needs. Deleting a local backup never comes here, and this never touches local files.
 */
@Injectable()
export class BucketRetention {
  private readonly logger = new Logger(BucketRetention.name);

  constructor(
    @Inject(OFFSITE_BUCKET) private readonly bucket: OffsiteBucket | null,
    private readonly audit: AuditService,
    private readonly settings: SettingsService,
    private readonly clock: Clock,
  ) {}

  /**
   * A delete the bucket refuses (Object Lock: AccessDenied) is logged, audited and skipped; it does not stop the
   * others. Never throws. Returns the backups whose objects were deleted.
   */
  async prune(actor: AuditActor = SYSTEM_ACTORS.system): Promise<string[]> {
    const pruned: string[] = [];
    if (this.bucket === null) {
      return pruned;
    }
    try {
      const count = await this.settings.getInt('general.offsite_retention_count');
      const maxAgeDays = await this.settings.getInt('general.offsite_retention_days');
      const objects = await this.bucket.list();
      const present = new Set(objects.map((o) => o.name));
      const backups = new Map<string, { name: string; createdAtMs: number; seq: number; objects: string[] }>();
      for (const object of objects) {
        const name = backupNameOfObject(object.name);
        const parsed = name === null ? null : parseBackupName(name);
        if (name === null || parsed === null || backups.has(name)) {
          continue;
        }
        const keys = [object.name, manifestObjectName(name)].filter((key) => present.has(key));
        backups.set(name, { name, createdAtMs: parsed.createdAtMs, seq: parsed.seq, objects: keys });
      }
      const doomed = selectForPruning([...backups.values()], { count, maxAgeDays, nowMs: this.clock.nowMs() });
      for (const backup of doomed) {
        if (await this.deleteBackup(backup.name, backup.objects, actor, count, maxAgeDays)) {
          pruned.push(backup.name);
        }
      }
    } catch (error) {
      this.logger.warn(`Off-site retention failed: ${reasonOf(error)}`);
    }
    return pruned;
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
