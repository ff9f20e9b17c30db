import { Injectable } from '@nestjs/common';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { AppConfig } from '../config/app-config';
import { AgeCrypto } from '../offsite/age-crypto';
import type { RemoteBackupDto } from '../offsite/dto/offsite.dto';
import { BucketError, OffsiteBucket } from '../offsite/offsite-bucket';
import { findRemoteCopy, listRemoteBackups } from '../offsite/remote-catalog';
import { bucketSource } from '../offsite/bucket-source';
import { FreshInstall, InstallRefusedError } from '../recovery/fresh-install';
import { type AdmittedFile, ImportFailedError, ImportPipeline, ImportRefusedError } from '../recovery/import-pipeline';
import { parsePointInTime } from '../recovery/point-in-time';
import { rebuildAt } from '../replication/replica-rebuild';
import { PointInTimeUnavailableError, ReplicaDamagedError } from '../replication/replica-window';
import { ReplicaObjectError, ReplicaStore } from '../replication/replica-store';
import { CliError, usageError } from './cli-error';
import { formatBytes } from './format';
import { Terminal } from './terminal';

export interface RemoteRestoreOutcome {
  name: string;
  size: number;
  sha256: string;
  durationMs: number;
}

/**
 * Disaster recovery on a machine with no database yet: `backups restore --from-remote <name|latest> --yes`.
 * The copy comes in through the recovery import pipeline (size capped at its manifest, object and database sha256
 * checked, decrypted with the identity, admitted as a database of this application), is kept in the backups folder
 * under its own name, and is installed as MISSION_CONTROL_DB_PATH by FreshInstall, which audits the recovery.
 */
@Injectable()
export class RemoteRestore {
  constructor(
    private readonly config: AppConfig,
    private readonly imports: ImportPipeline,
    private readonly fresh: FreshInstall,
    private readonly terminal: Terminal,
  ) {}

  /** The bucket adapter for a one-off command, or a one-line reason why there is none. */
  private bucket(): OffsiteBucket {
    if (!this.config.offsite) {
      throw new CliError('Off-site storage is not configured (set OFFSITE_S3_BUCKET and its credentials)');
    }
    return new OffsiteBucket(this.config.offsite, this.config.offsiteRequestTimeoutMs);
  }

  /** The newest `limit` copies (every one without it); manifests are read for those only. */
  async list(limit?: number): Promise<{ backups: RemoteBackupDto[]; bucket: string; prefix: string; total: number }> {
    const bucket = this.bucket();
    try {
      const listed = await listRemoteBackups(bucket, { limit, nowMs: Date.now() });
      return { backups: listed.backups, bucket: bucket.bucket, prefix: bucket.prefix, total: listed.total };
    } catch (error) {
      throw asCliError(error);
    } finally {
      bucket.destroy();
    }
  }

  async run(requested: string, options: { yes: boolean }): Promise<RemoteRestoreOutcome> {
    try {
      return await this.runChecked(requested, options);
    } catch (error) {
      throw asCliError(error);
    }
  }

  /**
   * `--from-remote --at <time|latest>`: the moment rebuilt from the replica (the generation's snapshot and every
   * commit observed at or before it), brought in through the import pipeline, admitted and installed like a copy.
   */
  async runAt(rawAt: string, options: { yes: boolean }): Promise<RemoteRestoreOutcome & { restoredTo: Date }> {
    try {
      return await this.runAtChecked(rawAt, options);
    } catch (error) {
      if (error instanceof PointInTimeUnavailableError || error instanceof ReplicaDamagedError) {
        throw new CliError(`${error.message}. Nothing was installed.`);
      }
      if (error instanceof ReplicaObjectError) {
        throw new CliError(`${error.message}; recover by hand (docs/replication.md). Nothing was installed.`);
      }
      throw asCliError(error);
    }
  }

  private async runAtChecked(
    rawAt: string,
    options: { yes: boolean },
  ): Promise<RemoteRestoreOutcome & { restoredTo: Date }> {
    const started = performance.now();
    let at: Date | 'latest';
    try {
      at = rawAt === 'latest' ? 'latest' : parsePointInTime(rawAt);
    } catch (error) {
      throw usageError(error instanceof Error ? error.message.replace('point_in_time', '--at') : String(error));
    }
    this.assertBareMachine(options);
    const offsite = this.config.offsite;
    if (offsite === undefined) {
      throw new CliError('Off-site storage is not configured (set OFFSITE_S3_BUCKET and its credentials)');
    }
    if (offsite.recipients.length > 0 && offsite.identityFile === undefined) {
      throw new CliError('The replica is encrypted: set BACKUP_ENCRYPTION_IDENTITY_FILE to the age identity file');
    }
    const target = this.config.dbPath;
    const moment = at === 'latest' ? 'the latest replicated state' : at.toISOString();
    if (!options.yes && !(await this.terminal.confirm(`Install ${moment} from the replica as ${target}?`))) {
      throw new CliError('Restore cancelled');
    }
    const bucket = this.bucket();
    await fsp.mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
    const scratchDir = await fsp.mkdtemp(path.join(path.dirname(target), '.mc-pitr-'));
    try {
      this.terminal.out(`Rebuilding ${moment} from ${bucket.bucket}/${bucket.prefix}replica/`);
      const store = new ReplicaStore(bucket, new AgeCrypto(offsite.recipients, offsite.identityFile));
      // Rebuilt straight into the backups folder's temp file: admitted where it lies, not copied in.
      const { received, built: rebuilt } = await this.imports.receiveBuilt((into) =>
        rebuildAt(store, at, { scratchDir, into, notAfterMs: Date.now(), admissionChecks: true }),
      );
      const name = `point in time ${rebuilt.restoredTo.toISOString()}`;
      let admitted;
      try {
        admitted = await this.imports.admit(received, { livePageSize: null });
      } catch (error) {
        throw importFailure(name, error);
      }
      await this.install(
        admitted,
        `replica-${rebuilt.generation}`,
        `replica generation ${rebuilt.generation} at ${rebuilt.restoredTo.toISOString()}`,
      );
      return {
        name,
        size: admitted.size,
        sha256: admitted.sha256,
        durationMs: performance.now() - started,
        restoredTo: rebuilt.restoredTo,
      };
    } finally {
      bucket.destroy();
      await fsp.rm(scratchDir, { recursive: true, force: true });
    }
  }

  private assertBareMachine(options: { yes: boolean }): void {
    const target = this.config.dbPath;
    if (fs.existsSync(target)) {
      throw new CliError(
        `A database already exists at ${target}. --from-remote is for a machine without one: to go back to an ` +
          'off-site copy on this machine, run `backups remote pull <name>` and then `backups restore <name>`',
      );
    }
    if (!options.yes && !this.terminal.interactive) {
      throw usageError('Refusing to restore without confirmation: pass --yes when not running at a terminal');
    }
  }

  private async runChecked(requested: string, options: { yes: boolean }): Promise<RemoteRestoreOutcome> {
    const started = performance.now();
    const target = this.config.dbPath;
    this.assertBareMachine(options);
    const crypto = new AgeCrypto([], this.config.offsite?.identityFile);
    const bucket = this.bucket();
    try {
      const found = await findRemoteCopy(bucket, requested, Date.now());
      if (found === null) {
        throw new CliError(
          requested === 'latest'
            ? `No backups under ${bucket.prefix} in bucket ${bucket.bucket}`
            : `No off-site copy named ${requested} (see \`backups remote list\`)`,
        );
      }
      const { name, manifest } = found;
      if (manifest === null) {
        throw new CliError(`${name} has no readable manifest in the bucket; recover it by hand with age and sqlite3`);
      }
      if (manifest.encrypted && !crypto.canDecrypt) {
        throw new CliError(`${name} is encrypted: set BACKUP_ENCRYPTION_IDENTITY_FILE to the age identity file`);
      }
      if (!options.yes && !(await this.terminal.confirm(`Install ${name} from the bucket as ${target}?`))) {
        throw new CliError('Restore cancelled');
      }
      this.terminal.out(`Downloading ${name} (${formatBytes(manifest.size)}) from ${bucket.bucket}/${bucket.prefix}`);
      const progress = this.terminal.progress('Download', manifest.size);
      let admitted;
      try {
        const received = await this.imports.receive(
          bucketSource(bucket, crypto, name, manifest, (done) => progress.update(Math.min(done, manifest.size))),
        );
        admitted = await this.imports.admit(received, { livePageSize: null });
      } catch (error) {
        throw importFailure(name, error);
      } finally {
        progress.stop();
      }
      await this.install(admitted, name, `off-site copy ${name} from ${bucket.bucket}/${bucket.prefix}`);
      return { name, size: admitted.size, sha256: admitted.sha256, durationMs: performance.now() - started };
    } finally {
      bucket.destroy();
    }
  }

  /** The admitted file becomes the database of this bare machine; the temp file is gone either way. */
  private async install(admitted: AdmittedFile, label: string, source: string): Promise<void> {
    try {
      await this.fresh.installTemp(admitted.tmp, label, { source });
    } catch (error) {
      if (error instanceof InstallRefusedError) {
        throw new CliError(error.message);
      }
      throw error;
    } finally {
      await this.imports.discard(admitted).catch(() => undefined);
    }
  }
}

/** One line for every way a download can fail: the pipeline has already removed what it wrote. */
function importFailure(name: string, error: unknown): unknown {
  if (error instanceof ImportRefusedError) {
    return new CliError(`Refusing to install ${name}: ${error.verdict.problems.join('; ')}. Nothing was installed.`);
  }
  if (error instanceof ImportFailedError) {
    const cause = error.cause instanceof BucketError ? ` (${error.cause.code})` : '';
    return new CliError(`Cannot restore ${name}: ${error.message}${cause}. Nothing was installed.`);
  }
  return error;
}

/** A bucket failure is an expected outcome for an operator: one line with its code, no stack. */
function asCliError(error: unknown): unknown {
  if (error instanceof BucketError) {
    return new CliError(`The bucket request failed: ${error.code} (check OFFSITE_S3_* and the credentials)`);
  }
  return error;
}
