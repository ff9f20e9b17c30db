import { HttpStatus, Inject, Injectable, Logger } from '@nestjs/common';
import { AuditActor, AuditService } from '../audit/audit.service';
import { BackupFiles, UploadTooLargeError } from '../backups/backup-files';
import { BackupManifests } from '../backups/backup-manifests';
import { ApiError } from '../common/api-error';
import { Clock } from '../common/clock';
import type { RequestMeta } from '../common/request-meta';
import { AgeCrypto } from './age-crypto';
import { BucketError, type OffsiteBucket } from './offsite-bucket';
import { NOT_CONFIGURED, OFFSITE_BUCKET, OFFSITE_CRYPTO, reasonOf, validName } from './offsite-common';
import { OffsiteOutbox } from './offsite-outbox';
import { listRemoteBackups, maxObjectBytes } from './remote-catalog';
import { manifestObjectName, objectNameFor, parseRemoteManifest, type RemoteManifest } from './remote-objects';
import { downloadAndPublish } from './remote-pull';
import { ImportPipeline } from '../recovery/import-pipeline';
import { cappedBody, hashingTap, hashStream, through } from './stream-taps';
import type { PullResponseDto, RemoteListDto, RemoteVerifyDto, VerifyCheck } from './dto/offsite.dto';

/**
 * The remote routes and their CLI twins: list what the bucket holds, verify a copy, pull one into the backups
 * folder. On request only, never on a timer.
 */
@Injectable()
export class RemoteService {
  private readonly logger = new Logger(RemoteService.name);

  constructor(
    @Inject(OFFSITE_BUCKET) private readonly bucket: OffsiteBucket | null,
    @Inject(OFFSITE_CRYPTO) private readonly crypto: AgeCrypto,
    private readonly outbox: OffsiteOutbox,
    private readonly files: BackupFiles,
    private readonly manifests: BackupManifests,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly imports: ImportPipeline,
  ) {}

  private requireConfigured(): OffsiteBucket {
    if (this.bucket === null) {
      throw new ApiError(HttpStatus.BAD_REQUEST, NOT_CONFIGURED);
    }
    return this.bucket;
  }

  private bucketFailed(error: unknown): never {
    if (error instanceof ApiError) {
      throw error;
    }
    const reason = reasonOf(error);
    this.logger.warn(`Off-site request failed: ${reason}`);
    throw new ApiError(HttpStatus.BAD_GATEWAY, 'Off-site storage request failed', { reason });
  }

  /**
   * Read from the bucket itself (copies made by another machine show too), newest first. The LIST pages give every
   * name and size; manifests are read only for the copies on the requested page that this machine did not upload.
   */
  async list(page: { limit?: number; offset?: number } = {}): Promise<RemoteListDto> {
    const bucket = this.requireConfigured();
    try {
      const listed = await listRemoteBackups(bucket, {
        known: this.outbox.knownCopies(),
        limit: page.limit,
        offset: page.offset,
        nowMs: this.clock.nowMs(),
      });
      return {
        backups: listed.backups,
        bucket: bucket.bucket,
        prefix: bucket.prefix,
        total: listed.total,
        offset: page.offset ?? 0,
      };
    } catch (error) {
      return this.bucketFailed(error);
    }
  }

  private async remoteManifest(name: string): Promise<RemoteManifest | null> {
    return parseRemoteManifest(await this.requireConfigured().getSmall(manifestObjectName(name)));
  }

  /**
   * Reads the stored object back and hashes it against the manifest's object_sha256; with the identity, also
   * decrypts it (same single read) into a scratch file beside the backups, hashes it against sha256 and runs
   * integrity_check. `checked` says what was; `ok` is null when only the stored bytes could be checked. The
   * scratch file is always removed. No such object: 404; an object without a valid manifest: 422.
   */
  async verify(rawName: unknown, actor: AuditActor, meta?: Partial<RequestMeta>): Promise<RemoteVerifyDto> {
    const bucket = this.requireConfigured();
    const name = validName(rawName);
    let result: RemoteVerifyDto;
    try {
      result = await this.verifyNamed(bucket, name);
    } catch (error) {
      return this.bucketFailed(error);
    }
    await this.audit.record({
      action: 'offsite_verify',
      actor,
      targetType: 'backup',
      targetId: name,
      detail: { ...result },
      meta,
    });
    return result;
  }

  private async verifyNamed(bucket: OffsiteBucket, name: string): Promise<RemoteVerifyDto> {
    const manifest = await this.remoteManifest(name);
    const object = await bucket.getObject(objectNameFor(name, manifest?.encrypted ?? true));
    if (object === null) {
      throw new ApiError(HttpStatus.NOT_FOUND, 'No off-site copy of that name');
    }
    if (manifest === null) {
      object.body.destroy();
      throw new ApiError(
        HttpStatus.UNPROCESSABLE_ENTITY,
        'The off-site copy has no valid manifest: there is nothing to check it against',
      );
    }
    const failed = (checked: VerifyCheck[]): RemoteVerifyDto => ({
      ok: false,
      name,
      object: 'mismatch',
      decrypted: false,
      integrity: null,
      checksum: null,
      checked,
    });
    let capped: ReturnType<typeof cappedBody>;
    try {
      capped = cappedBody(object, maxObjectBytes(manifest));
    } catch {
      return failed(['object_size']);
    }
    const decrypt = this.crypto.canDecrypt || !manifest.encrypted;
    if (!decrypt) {
      try {
        const stored = await hashStream(capped.body);
        const match = stored.sha256 === manifest.object_sha256;
        // Only the stored bytes could be checked: a match proves the bucket kept them, not what is inside.
        return {
          ok: match ? null : false,
          name,
          object: match ? 'match' : 'mismatch',
          decrypted: false,
          integrity: null,
          checksum: null,
          checked: ['object_sha256'],
        };
      } catch (error) {
        if (capped.exceeded()) {
          return failed(['object_size']);
        }
        throw error;
      }
    }
    return this.verifyInside(name, manifest, capped);
  }

  /** The decrypting half of verify: the object's hash, then the backup's hash and integrity_check. */
  private async verifyInside(
    name: string,
    manifest: RemoteManifest,
    capped: ReturnType<typeof cappedBody>,
  ): Promise<RemoteVerifyDto> {
    const objectTap = hashingTap();
    const tapped = through(capped.body, objectTap.stream);
    const checks: VerifyCheck[] = manifest.encrypted
      ? ['object_sha256', 'decrypt', 'sha256', 'integrity']
      : ['object_sha256', 'sha256', 'integrity'];
    let tmp: string | null = null;
    try {
      const plain = manifest.encrypted ? await this.crypto.decrypt(tapped) : tapped;
      const received = await this.files.receiveUpload(plain, manifest.size);
      tmp = received.tmp;
      const stored = objectTap.result();
      const object = stored.sha256 === manifest.object_sha256 ? 'match' : 'mismatch';
      const check = await this.files.inspectTemp(tmp, { integrity: 'full', hash: true, makeStandalone: false });
      const checksum = check.sha256 === manifest.sha256 ? 'match' : 'mismatch';
      const integrity = check.integrity ?? 'unreadable';
      return {
        ok: object === 'match' && checksum === 'match' && integrity === 'ok',
        name,
        object,
        decrypted: manifest.encrypted,
        integrity,
        checksum,
        checked: checks,
      };
    } catch (error) {
      if (error instanceof BucketError) {
        throw error;
      }
      if (capped.exceeded() || error instanceof UploadTooLargeError) {
        return {
          ok: false,
          name,
          object: 'mismatch',
          decrypted: false,
          integrity: null,
          checksum: null,
          checked: [capped.exceeded() ? 'object_size' : 'size'],
        };
      }
      // Altered bytes fail age's authentication: that is a damaged object, not a bucket failure.
      this.logger.warn(`Off-site verify of ${name}: the object does not decrypt (${reasonOf(error)})`);
      return {
        ok: false,
        name,
        object: 'mismatch',
        decrypted: false,
        integrity: null,
        checksum: null,
        checked: [manifest.encrypted ? 'decrypt' : 'sha256'],
      };
    } finally {
      tapped.destroy();
      if (tmp !== null) {
        await this.files.discardTemp(tmp).catch(() => undefined);
      }
    }
  }

  /**
   * Downloads, decrypts, checks sha256 and the database, and keeps it under its own name in the backups folder
   * (never over an existing file); then it restores like any backup. The admission of the request is here; the
   * import itself is {@link downloadAndPublish}.
   */
  async pull(rawName: unknown, actor: AuditActor, meta?: Partial<RequestMeta>): Promise<PullResponseDto> {
    const bucket = this.requireConfigured();
    const name = validName(rawName);
    if ((await this.files.statBackup(name)) !== null) {
      throw new ApiError(HttpStatus.CONFLICT, 'A local backup of that name exists');
    }
    let manifest: RemoteManifest | null;
    try {
      manifest = await this.remoteManifest(name);
    } catch (error) {
      return this.bucketFailed(error);
    }
    if (manifest === null) {
      throw new ApiError(HttpStatus.NOT_FOUND, 'No off-site copy of that name');
    }
    if (manifest.encrypted && !this.crypto.canDecrypt) {
      throw new ApiError(
        HttpStatus.BAD_REQUEST,
        'The off-site copy is encrypted and no identity is configured (BACKUP_ENCRYPTION_IDENTITY_FILE)',
      );
    }
    try {
      return await downloadAndPublish(
        {
          bucket,
          crypto: this.crypto,
          imports: this.imports,
          manifests: this.manifests,
          outbox: this.outbox,
          audit: this.audit,
          clock: this.clock,
        },
        name,
        manifest,
        actor,
        meta,
      );
    } catch (error) {
      return this.bucketFailed(error);
    }
  }
}
