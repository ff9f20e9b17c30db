import { Injectable } from '@nestjs/common';
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import { BackupFiles } from '../backups/backup-files';
import { ApiError } from '../common/api-error';
import { AppConfig } from '../config/app-config';
import { admit, compareChecksum } from '../recovery/admission';
import { FreshInstall } from '../recovery/fresh-install';
import { RestoreService } from '../recovery/restore.service';
import { AppSession } from './app-session';
import { CLI_ACTOR } from './cli-actor';
import { CliError, cliBackupName, errorMessage, usageError } from './cli-error';
import { DatabaseInUseError, DatabaseLock } from './database-lock';
import { Terminal } from './terminal';

export interface RestoreOptions {
  /** Skip the confirmation question (required when nobody is at a terminal to answer it). */
  yes: boolean;
}

export interface RestoreOutcome {
  name: string;
  safetyBackup: string | null;
  durationMs: number;
}

/**
 * The product document's manual restore ("stop the service, replace the database file, start it") made safe. It is
 * the service's own online restore (RestoreService), run from the CLI: the backup is verified by the same admission
 * rule, a safety copy is taken and the backup's pages are copied into the live file through SQLite while holding its
 * write lock. The file is never renamed or replaced, so a process that opens the database meanwhile (a cron job, a
 * `sqlite3` shell) simply waits for the lock and sees the old or the restored data, never a file swapped from under
 * it. On a machine with no database yet, the verified backup is linked into place instead (FreshInstall).
 */
@Injectable()
export class OfflineRestore {
  constructor(
    private readonly config: AppConfig,
    private readonly files: BackupFiles,
    private readonly session: AppSession,
    private readonly terminal: Terminal,
    private readonly fresh: FreshInstall,
  ) {}

  async run(rawName: string, options: RestoreOptions): Promise<RestoreOutcome> {
    const started = performance.now();
    const name = cliBackupName(rawName);
    if (!options.yes && !this.terminal.interactive) {
      throw usageError('Refusing to restore without confirmation: pass --yes when not running at a terminal');
    }
    const dbPath = this.config.dbPath;
    if ((await this.files.statBackup(name)) === null) {
      throw new CliError(`No backup named ${name} in ${this.files.dir}`);
    }
    if (!fs.existsSync(dbPath)) {
      if (!options.yes && !(await this.terminal.confirm(`Restore ${name} as ${dbPath}?`))) {
        throw new CliError('Restore cancelled. Nothing was changed.');
      }
      this.terminal.out(`No database at ${dbPath}: installing ${name} as it (verified first)`);
      await this.fresh.installBackup(name, { source: `local backup ${name}` });
      return { name, safetyBackup: null, durationMs: performance.now() - started };
    }
    // Verified before the app is booted on the live database (booting migrates it): a refused backup leaves the
    // database byte for byte as it was. The restore reuses this inspection unless the file changed since.
    this.terminal.out(`Verifying ${name} (full integrity_check and sha256)…`);
    const seen = await this.files.statBackup(name);
    const check = await this.files.inspect(name, { integrity: 'full', hash: true });
    const checksum = compareChecksum(recordedSha256(dbPath, name), check.sha256);
    const verdict = admit({ check, checksum, livePageSize: null, requireAdmin: false });
    if (verdict.problems.length > 0) {
      throw new CliError(`Refusing to restore ${name}: ${verdict.problems.join('; ')}. Nothing was changed.`);
    }
    // The service would not notice its database change under it: refuse while it (or anyone) holds it open.
    this.assertNotInUse();
    if (!options.yes && !(await this.terminal.confirm(`Restore ${name} into ${dbPath} (a safety copy is kept)?`))) {
      throw new CliError('Restore cancelled. Nothing was changed.');
    }
    this.terminal.out(`Restoring ${name} through SQLite (a safety copy first)…`);
    try {
      const done = await this.session.run((app) =>
        app.get(RestoreService).restore(name, {
          actor: CLI_ACTOR,
          meta: {},
          mode: 'offline',
          ...(seen !== null ? { verified: { check, size: seen.size, mtimeMs: seen.mtimeMs } } : {}),
        }),
      );
      return { name, safetyBackup: done.safety_backup, durationMs: performance.now() - started };
    } catch (error) {
      if (error instanceof ApiError && error.getStatus() === 400) {
        throw new CliError(`Refusing to restore ${name}: ${error.message}. Nothing was changed.`);
      }
      if (error instanceof ApiError) {
        throw new CliError(`${error.message} (${errorMessage(error)})`);
      }
      throw error;
    }
  }

  private assertNotInUse(): void {
    try {
      DatabaseLock.acquire(this.config.dbPath)?.release();
    } catch (error) {
      if (error instanceof DatabaseInUseError) {
        throw new CliError(`${error.message}. Nothing was changed.`);
      }
      throw new CliError(`Cannot lock the current database (${errorMessage(error)}). Nothing was changed.`);
    }
  }
}

/**
 * The sha256 the live database's manifest recorded for `name`, read through SQLite without booting the app (which
 * would migrate the file). Null when there is none or it cannot be read: a damaged live database is a reason to
 * restore, not a reason to refuse.
 */
function recordedSha256(dbPath: string, name: string): string | null {
  let db: Database.Database | undefined;
  try {
    db = new Database(dbPath, { fileMustExist: true, timeout: 1000 });
    db.pragma('query_only = ON');
    const row = db.prepare('SELECT sha256 FROM backup_manifests WHERE name = ?').get(name) as
      { sha256: string | null } | undefined;
    return row?.sha256 ?? null;
  } catch {
    return null;
  } finally {
    try {
      db?.close();
    } catch {
      // Only a lookup: nothing to report.
    }
  }
}
