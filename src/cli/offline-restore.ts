import { Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BackupFiles, type SnapshotInfo } from '../backups/backup-files';
import { BackupManifests } from '../backups/backup-manifests';
import { parseBackupName, SAFETY_PREFIX, validateBackupName } from '../backups/backup-name';
import { type InspectResult, runInspectWorker } from '../backups/snapshot';
import { Clock } from '../common/clock';
import { AppConfig } from '../config/app-config';
import { AppSession } from './app-session';
import { CLI_ACTOR } from './cli-actor';
import { CliError, errorMessage, errorReason, usageError } from './cli-error';
import { DatabaseInUseError, DatabaseLock } from './database-lock';
import { copyFileHashed, fsyncDir, fsyncFile, removeIfPresent, sqliteSidecars } from './file-copy';
import { formatBytes } from './format';
import { newRestoreId, RestoreJournal, type RestoreJournalEntry } from '../backups/restore-journal';
import { RestoreRunner, safetyManifestRow } from '../backups/restore-runner';
import { type LiveState, maxAuditIdOfFile, readLiveStateFromFile } from '../backups/restore-state';
import { compareChecksum, recordedSha256, restoreProblems } from './restore-check';
import { Terminal } from './terminal';

export interface RestoreOptions {
  /** Skip the confirmation question (required when nobody is at a terminal to answer it). */
  yes: boolean;
}

export interface RestoreOutcome {
  name: string;
  safetyBackup: string | null;
  sha256: string;
  durationMs: number;
}

/** Identity and size of the live files, to notice a writer sneaking in between the safety copy and the swap. */
interface LiveSignature {
  ino: number;
  size: number;
  mtimeMs: number;
  walSize: number;
}

/**
 * The product document's manual restore ("stop the service, replace the database file, start it") made safe, for
 * when the service is stopped. Each step either changes nothing or leaves a way back:
 *  1. the name is checked and the backup fully verified (integrity, schema version, an admin, checksum): a bad
 *     backup is refused before anything is touched;
 *  2. nobody may have the database open (see DatabaseLock), then the operator confirms;
 *  3. a safety copy of the current database (including what only its -wal holds) goes to the backups folder under
 *     `mc-safety-…`, which is never overwritten and never pruned;
 *  4. the backup is copied to a temp file beside the database (same filesystem, so the rename is atomic), proven
 *     byte-identical to what was verified, made a standalone rollback-journal file and fsynced;
 *  5. under an exclusive lock: stale `-wal`, `-shm` and `-journal` files go (their content is in the safety copy;
 *     left in place SQLite would replay them onto the restored file), the temp file is renamed over the database
 *     and the folder fsynced;
 *  6. the app's data layer opens the restored file (migrations run, as at service start) and audits
 *     `backup_restore`; if it cannot, the safety copy is put back the same way.
 */
@Injectable()
export class OfflineRestore {
  constructor(
    private readonly config: AppConfig,
    private readonly files: BackupFiles,
    private readonly session: AppSession,
    private readonly terminal: Terminal,
    private readonly clock: Clock,
  ) {}

  async run(rawName: string, options: RestoreOptions): Promise<RestoreOutcome> {
    const started = performance.now();
    const name = validName(rawName);
    if (!options.yes && !this.terminal.interactive) {
      throw usageError('Refusing to restore without confirmation: pass --yes when not running at a terminal');
    }
    const dbPath = this.config.dbPath;
    const backupPath = this.files.resolveInside(name);
    if ((await this.files.statBackup(name)) === null) {
      throw new CliError(`No backup named ${name} in ${this.files.dir}`);
    }

    const check = await this.verify(name, dbPath);
    const sha256 = check.sha256;
    if (check.problems.length > 0 || sha256 === null) {
      throw new CliError(`Refusing to restore ${name}: ${check.problems.join('; ')}. Nothing was changed.`);
    }

    // First look: refuse before asking the operator anything. Checked again, holding the lock, at the swap.
    this.assertNotInUse();
    const hadDatabase = fs.existsSync(dbPath);
    this.warnAboutOwner(dbPath);
    if (!options.yes) {
      const target = hadDatabase ? `replace ${dbPath} (a safety copy is kept)` : `create ${dbPath}`;
      if (!(await this.terminal.confirm(`Restore ${name} and ${target}?`))) {
        throw new CliError('Restore cancelled. Nothing was changed.');
      }
    }

    // A restore of our own that a crash cut short comes first: finish or undo it (see RestoreRunner.recover).
    const journal = new RestoreJournal(dbPath);
    if (hadDatabase && journal.read() !== null) {
      this.terminal.out('Finishing an earlier restore that was interrupted…');
      await this.session.run((app) => app.get(RestoreRunner).recover());
    }

    let entry: RestoreJournalEntry = {
      id: newRestoreId(),
      mode: 'offline',
      name,
      stage: 'started',
      startedAt: this.clock.nowSeconds(),
      actor: { id: CLI_ACTOR.id, username: CLI_ACTOR.username },
      safety: null,
      cookieBefore: null,
      swapTemp: null,
      reason: null,
      caller: null,
      copiedAuditSeq: maxAuditIdOfFile(backupPath),
    };
    journal.write(entry);
    let safety: SnapshotInfo | null = null;
    let pre: LiveState | null = null;
    let signature: LiveSignature | null = null;
    try {
      await this.pause('locked');
      if (hadDatabase) {
        safety = await this.takeSafetyCopy(dbPath);
        signature = liveSignature(dbPath);
        pre = readLiveStateFromFile(this.files.resolveInside(safety.name));
        pre.carried.get('backup_manifests')?.push(safetyManifestRow(safety, this.clock.nowSeconds()));
      } else {
        this.terminal.out(`No database at ${dbPath}: nothing to keep a safety copy of`);
      }
      await this.swapIn(backupPath, `Restoring ${name}`, sha256, signature, async (tmp) => {
        entry = journal.advance(entry, { stage: 'swapping', safety: safety?.name ?? null, swapTemp: tmp });
        await this.pause('copying');
      });
    } catch (error) {
      // Nothing was swapped in: the database is what it was.
      journal.clear();
      throw error;
    }
    entry = journal.advance(entry, { stage: 'copied' });
    this.terminal.out(`Replaced ${dbPath} with ${name}`);
    await this.pause('copied');

    const safetyBackup = safety?.name ?? null;
    const durationMs = performance.now() - started;
    const detail = { sha256, schema_version: check.schemaVersion, duration_ms: Math.round(durationMs) };
    try {
      // Booting runs the migrations on the restored file, as the service's next start would; then the same
      // bookkeeping as the online restore (carried tables, the audit log kept whole, no old session survives).
      await this.session.run(async (app) => {
        const runner = app.get(RestoreRunner);
        if (pre === null) {
          journal.clear();
        } else {
          await runner.finish(entry, pre, detail, {});
        }
        await app.get(BackupManifests).patch(name, parseBackupName(name)?.kind ?? 'upload', {
          integrity: 'ok',
          verifiedAt: this.clock.nowSeconds(),
          ...(check.recorded === null ? { sha256, size: check.size } : {}),
        });
      });
    } catch (error) {
      const unfinished = journal.read();
      if (unfinished !== null && safetyBackup !== null) {
        // The app could not even open the restored file: put the safety copy back by a file swap, then let the
        // journal's recovery audit it (it copies the safety copy in once more, which changes nothing).
        journal.advance(unfinished, { stage: 'rolling_back', reason: errorMessage(error) });
        await this.rollBack(safetyBackup, error);
      }
      throw new CliError(
        `Restore failed and was rolled back to the safety copy ${safetyBackup ?? '(none)'} (${errorMessage(error)})`,
      );
    }
    return { name, safetyBackup, sha256, durationMs };
  }

  /** MC_TEST_PAUSE_AT (kill tests only): stop here for good. */
  private async pause(point: 'locked' | 'copying' | 'copied'): Promise<void> {
    if (this.config.testPauseAt === point) {
      this.terminal.err(`MC_TEST_PAUSE_AT: the restore stops at ${point}`);
      await new Promise<never>(() => undefined);
    }
  }

  /** Full integrity_check and sha256 in the backups' inspect worker, then the online restore's rules. */
  private async verify(
    name: string,
    dbPath: string,
  ): Promise<InspectResult & { problems: string[]; recorded: string | null }> {
    this.terminal.out(`Verifying ${name} (full integrity_check and sha256)…`);
    const recorded = recordedSha256(dbPath, name);
    const check = await this.files.inspect(name, { integrity: 'full', hash: true });
    const checksum = compareChecksum(recorded, check.sha256);
    this.terminal.out(
      `integrity_check: ${check.integrity ?? 'unreadable'}; checksum: ${checksum}; schema version: ` +
        `${check.schemaVersion ?? 'none'}; admins: ${check.admins ?? 'none'}`,
    );
    return { ...check, problems: restoreProblems(check, checksum), recorded };
  }

  private assertNotInUse(): void {
    try {
      DatabaseLock.acquire(this.config.dbPath)?.release();
    } catch (error) {
      throw this.lockFailure(error);
    }
  }

  private lockFailure(error: unknown): CliError {
    if (error instanceof DatabaseInUseError) {
      return new CliError(`${error.message}. Nothing was changed.`);
    }
    return new CliError(`Cannot lock the current database (${errorMessage(error)}). Nothing was changed.`);
  }

  private async takeSafetyCopy(dbPath: string): Promise<SnapshotInfo> {
    this.terminal.out('Taking a safety copy of the current database…');
    try {
      const snapshot = await this.files.snapshot(dbPath, SAFETY_PREFIX, this.clock.now());
      this.terminal.out(`Safety copy: ${snapshot.name} (${formatBytes(snapshot.size)}) in ${this.files.dir}`);
      return snapshot;
    } catch (error) {
      throw new CliError(
        `Could not take a safety copy of the current database (${errorMessage(error)}). Nothing was changed. ` +
          'If it is damaged beyond reading, move it aside (keeping its -wal and -shm files with it) and run the ' +
          'restore again.',
      );
    }
  }

  /**
   * Puts a copy of `source` in place of the live database. The temp file lives beside the database, so the final
   * rename stays on one filesystem and is atomic: the database path always names either the old file or the new.
   */
  private async swapIn(
    source: string,
    label: string,
    expectedSha256: string | null,
    signature: LiveSignature | null,
    beforeRename: (tmp: string) => Promise<void> = () => Promise.resolve(),
  ): Promise<void> {
    const dbPath = this.config.dbPath;
    const tmp = path.join(path.dirname(dbPath), `.${path.basename(dbPath)}.restore-${randomBytes(8).toString('hex')}`);
    try {
      await this.createLike(tmp, dbPath);
      const progress = this.terminal.progress(label, (await fsp.stat(source)).size);
      let copied;
      try {
        copied = await copyFileHashed(source, tmp, (done) => progress.update(done));
      } finally {
        progress.stop();
      }
      if (expectedSha256 !== null && copied.sha256 !== expectedSha256) {
        throw new CliError('The backup changed after it was verified. Nothing was changed.');
      }
      // A backup is written in rollback-journal mode, but an uploaded or older file may carry the WAL flag, and
      // its first open would then look for a -wal beside it: switch the copy (never the backup) and check it.
      const standalone = await runInspectWorker(tmp, { integrity: 'quick', hash: false, makeStandalone: true });
      if (standalone.integrity !== 'ok') {
        throw new CliError('The copy of the backup failed quick_check. Nothing was changed.');
      }
      for (const sidecar of sqliteSidecars(tmp)) {
        await removeIfPresent(sidecar);
      }
      await fsyncFile(tmp);

      let lock: DatabaseLock | null;
      try {
        lock = DatabaseLock.acquire(dbPath);
      } catch (error) {
        throw this.lockFailure(error);
      }
      try {
        if (signature !== null && !sameSignature(signature, liveSignature(dbPath))) {
          throw new CliError('The database changed after the safety copy was taken; is the service running?');
        }
        // After the safety copy has their content and before the rename: no moment where they sit beside the
        // restored file, where SQLite would take them for its own and replay them onto it.
        await beforeRename(tmp);
        for (const sidecar of sqliteSidecars(dbPath)) {
          await removeIfPresent(sidecar);
        }
        await fsp.rename(tmp, dbPath);
        await fsyncDir(path.dirname(dbPath));
      } finally {
        // Held across the rename so nobody opens the old file in between. Its connection is on the old inode now.
        lock?.release();
      }
    } catch (error) {
      for (const file of [tmp, ...sqliteSidecars(tmp)]) {
        await removeIfPresent(file).catch(() => undefined);
      }
      throw error;
    }
  }

  /** A new private file with the current database's mode (and owner, when root can set it). */
  private async createLike(tmp: string, dbPath: string): Promise<void> {
    const handle = await fsp.open(tmp, 'wx', 0o600);
    await handle.close();
    const current = await fsp.stat(dbPath).catch(() => null);
    if (current === null) {
      return;
    }
    await fsp.chmod(tmp, current.mode & 0o777);
    if (process.getuid?.() === 0) {
      await fsp.chown(tmp, current.uid, current.gid);
    }
  }

  private warnAboutOwner(dbPath: string): void {
    const uid = process.getuid?.();
    const owner = fs.statSync(dbPath, { throwIfNoEntry: false })?.uid;
    if (uid !== undefined && uid !== 0 && owner !== undefined && owner !== uid) {
      this.terminal.err(
        `Warning: the database belongs to uid ${owner} but this runs as uid ${uid}; run the CLI as the ` +
          "service's user so the restored file stays writable by the service",
      );
    }
  }

  private async rollBack(safetyBackup: string | null, cause: unknown): Promise<never> {
    if (safetyBackup === null) {
      throw new CliError(
        `The restored database could not be opened by the app (${errorMessage(cause)}), and there was no ` +
          'previous database to return to.',
      );
    }
    this.terminal.err(`The restored database could not be opened by the app (${errorMessage(cause)}); rolling back`);
    try {
      await this.swapIn(this.files.resolveInside(safetyBackup), `Rolling back to ${safetyBackup}`, null, null);
      await this.session.run((app) => app.get(RestoreRunner).recover());
    } catch (error) {
      throw new CliError(
        `Rollback failed (${errorReason(error)}): put ${safetyBackup} back by hand with this same command ` +
          `(restore ${safetyBackup} --yes)`,
      );
    }
    throw new CliError(`Restore failed and was rolled back to the safety copy ${safetyBackup}`);
  }
}

function validName(rawName: string): string {
  const check = validateBackupName(rawName);
  if (!check.ok) {
    throw usageError(check.reason);
  }
  return check.name;
}

function liveSignature(dbPath: string): LiveSignature {
  const st = fs.statSync(dbPath);
  const wal = fs.statSync(`${dbPath}-wal`, { throwIfNoEntry: false });
  return { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, walSize: wal?.size ?? 0 };
}

function sameSignature(a: LiveSignature, b: LiveSignature): boolean {
  return a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.walSize === b.walSize;
}
