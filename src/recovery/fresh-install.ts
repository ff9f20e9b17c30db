import { Injectable } from '@nestjs/common';
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { AuditActor } from '../audit/audit.service';
import { BackupFiles } from '../backups/backup-files';
import { Clock } from '../common/clock';
import { fsyncDir } from '../common/durable-fs';
import { AppConfig } from '../config/app-config';
import { admit } from './admission';
import { newRestoreId } from './restore-journal';
import { RESTORE_EVENT } from './restore-runner';
import { insertAudit } from './restore-state';

export class InstallRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InstallRefusedError';
  }
}

/**
 * Disaster recovery on a machine with no database yet: a backup of the backups folder becomes MISSION_CONTROL_DB_PATH.
 * It is copied page by page into a scratch file, proven by the admission rule, and stamped there with what a live
 * database must not inherit from a backup (no scheduler run is "running") and with its own `backup_restore` audit
 * event naming the source. Only then is it linked into place: a hard link never replaces a file, so a database that
 * appeared meanwhile is never overwritten, and nothing ever opens the database path outside SQLite.
 */
@Injectable()
export class FreshInstall {
  constructor(
    private readonly files: BackupFiles,
    private readonly config: AppConfig,
    private readonly clock: Clock,
  ) {}

  /** A backup of the backups folder, copied page by page into a scratch file first (the backup stays as it is). */
  async installBackup(name: string, options: { source: string; actor?: AuditActor }): Promise<{ size: number }> {
    this.assertNoDatabase();
    const { tmp } = await this.files.restoreBackupToTemp(name);
    try {
      const check = await this.files.inspectTemp(tmp, { integrity: 'full', hash: false, makeStandalone: true });
      const verdict = admit({ check, checksum: 'unknown', livePageSize: null });
      if (verdict.problems.length > 0) {
        throw new InstallRefusedError(`Refusing to install ${name}: ${verdict.problems.join('; ')}`);
      }
      await this.installTemp(tmp, name, options);
      return { size: check.size };
    } finally {
      await this.files.discardTemp(tmp).catch(() => undefined);
    }
  }

  /**
   * A temp file of the backups folder that the import pipeline has already admitted (a download from the bucket):
   * stamped and linked into place. The caller still discards the temp name; the database keeps the inode.
   */
  async installTemp(tmp: string, name: string, options: { source: string; actor?: AuditActor }): Promise<void> {
    const target = this.assertNoDatabase();
    this.stamp(tmp, name, options);
    await fsp.mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
    try {
      await fsp.link(tmp, target);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new InstallRefusedError(`A database appeared at ${target} meanwhile; nothing was replaced`);
      }
      throw error;
    }
    await fsyncDir(path.dirname(target));
  }

  private assertNoDatabase(): string {
    const target = this.config.dbPath;
    if (fs.existsSync(target)) {
      throw new InstallRefusedError(`A database already exists at ${target}; nothing was replaced`);
    }
    return target;
  }

  /** One durable transaction in the scratch file, before it is linked into place. */
  private stamp(file: string, name: string, options: { source: string; actor?: AuditActor }): void {
    const actor = options.actor ?? { id: null, username: 'cli' };
    const db = new Database(file, { fileMustExist: true });
    try {
      db.pragma('trusted_schema = OFF');
      db.pragma('synchronous = FULL');
      db.transaction(() => {
        db.prepare('UPDATE scheduler_tasks SET running = 0').run();
        insertAudit(db, {
          action: RESTORE_EVENT,
          actor: actor.username,
          actorId: actor.id,
          targetId: name,
          detail: { name, source: options.source, offline: true, empty_machine: true, restore_id: newRestoreId() },
          ip: null,
          userAgent: null,
          createdAt: this.clock.nowSeconds(),
        });
      }).immediate();
    } finally {
      db.close();
    }
  }
}
