import { Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Transform, type TransformCallback, pipeline } from 'node:stream';
import { BackupFiles } from '../backups/backup-files';
import { AppConfig } from '../config/app-config';
import { AgeCrypto } from '../offsite/age-crypto';
import { BucketError, OffsiteBucket } from '../offsite/offsite-bucket';
import { findRemoteCopy, listRemoteBackups } from '../offsite/remote-catalog';
import { objectNameFor } from '../offsite/remote-objects';
import type { RemoteBackupDto } from '../offsite/dto/offsite.dto';
import { CliError, usageError } from './cli-error';
import { fsyncDir } from './file-copy';
import { formatBytes } from './format';
import { restoreProblems } from './restore-check';
import { Terminal } from './terminal';

export interface RemoteRestoreOutcome {
  name: string;
  size: number;
  sha256: string;
  durationMs: number;
}

/**
 * Disaster recovery on a machine with no database yet: `backups restore --from-remote <name|latest> --yes`.
 * Downloads the copy, decrypts it (the identity is required), checks it against its manifest and as a database of
 * this application, then installs it as MISSION_CONTROL_DB_PATH. The copy is written to a temp file in the backups
 * folder beside the database and linked into place: a hard link never replaces an existing file, and nothing ever
 * opens the database path itself.
 */
@Injectable()
export class RemoteRestore {
  constructor(
    private readonly config: AppConfig,
    private readonly files: BackupFiles,
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

  private async runChecked(requested: string, options: { yes: boolean }): Promise<RemoteRestoreOutcome> {
    const started = performance.now();
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
      await this.files.ensureDir();
      const stream = await bucket.getStream(objectNameFor(name, manifest.encrypted));
      if (stream === null) {
        throw new CliError(`${name} vanished from the bucket`);
      }
      const objectHash = createHash('sha256');
      const plainHash = createHash('sha256');
      const progress = this.terminal.progress('Download', manifest.size);
      let seen = 0;
      const tap = new Transform({
        transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
          objectHash.update(chunk);
          seen += chunk.length;
          progress.update(Math.min(seen, manifest.size));
          callback(null, chunk);
        },
      });
      pipeline(stream, tap, () => undefined);
      let tmp: string | null = null;
      try {
        try {
          const plain = manifest.encrypted ? await crypto.decrypt(tap) : tap;
          // Hashed as it arrives: the check below may switch a WAL-flagged copy to a standalone file.
          const plainTap = new Transform({
            transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
              plainHash.update(chunk);
              callback(null, chunk);
            },
          });
          pipeline(plain, plainTap, () => undefined);
          tmp = (await this.files.receiveUpload(plainTap, Number.MAX_SAFE_INTEGER)).tmp;
        } catch (error) {
          if ((error as { name?: string }).name === 'BucketError') {
            throw error;
          }
          throw new CliError(`${name} does not decrypt with the identity in BACKUP_ENCRYPTION_IDENTITY_FILE`);
        } finally {
          progress.stop();
        }
        if (objectHash.digest('hex') !== manifest.object_sha256) {
          throw new CliError(`${name}: the stored object does not match its manifest (object_sha256)`);
        }
        const check = await this.files.inspectTemp(tmp, { integrity: 'full', hash: true, makeStandalone: true });
        const sha256 = plainHash.digest('hex');
        const problems = restoreProblems(check, sha256 === manifest.sha256 ? 'match' : 'mismatch');
        if (problems.length > 0) {
          throw new CliError(`Refusing to install ${name}: ${problems.join('; ')}`);
        }
        await fsp.mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
        try {
          await fsp.link(tmp, target);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
            throw new CliError(`A database appeared at ${target} meanwhile; nothing was replaced`);
          }
          throw error;
        }
        await fsyncDir(path.dirname(target));
        return { name, size: check.size, sha256, durationMs: performance.now() - started };
      } finally {
        if (tmp !== null) {
          await this.files.discardTemp(tmp).catch(() => undefined);
        }
      }
    } finally {
      bucket.destroy();
    }
  }
}

/** A bucket failure is an expected outcome for an operator: one line with its code, no stack. */
function asCliError(error: unknown): unknown {
  if (error instanceof BucketError) {
    return new CliError(`The bucket request failed: ${error.code} (check OFFSITE_S3_* and the credentials)`);
  }
  return error;
}
