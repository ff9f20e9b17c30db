import { HttpStatus, Inject, Injectable, Logger } from '@nestjs/common';
import { AuditActor, AuditService } from '../audit/audit.service';
import { BackupFiles } from '../backups/backup-files';
import { BackupManifests } from '../backups/backup-manifests';
import { ApiError } from '../common/api-error';
import { Clock } from '../common/clock';
import type { RequestMeta } from '../common/request-meta';
import { AgeCrypto } from './age-crypto';
import { BucketError, type OffsiteBucket } from './offsite-bucket';
import { NOT_CONFIGURED, OFFSITE_BUCKET, OFFSITE_CRYPTO, reasonOf, validName } from './offsite-common';
import { OffsiteOutbox } from './offsite-outbox';
import { listRemoteBackups } from './remote-catalog';
import { manifestObjectName, objectNameFor, parseRemoteManifest, type RemoteManifest } from './remote-objects';
import { downloadAndPublish } from './remote-pull';
import { hashingTap, hashStream, through } from './stream-taps';
import type { PullResponseDto, RemoteListDto, RemoteVerifyDto } from './dto/offsite.dto';

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

  /** Read from the bucket itself (copies made by another machine show too), newest first. */
  async list(): Promise<RemoteListDto> {
    const bucket = this.requireConfigured();
    const known = new Map(
      this.outbox
        .all()
        .filter((row) => row.status === 'uploaded' && row.object_name !== null)
        .map((row) => [row.object_name!, { sha256: row.sha256, size: row.size }]),
    );
    try {
      return { backups: await listRemoteBackups(bucket, known), bucket: bucket.bucket, prefix: bucket.prefix };
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
   * integrity_check. The scratch file is always removed.
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
    const missing: RemoteVerifyDto = {
      ok: false,
      name,
      object: 'missing',
      decrypted: false,
      integrity: null,
      checksum: null,
    };
    const objectName = objectNameFor(name, manifest?.encrypted ?? true);
    const stream = await bucket.getStream(objectName);
    if (stream === null || manifest === null) {
      stream?.destroy();
      return missing;
    }
    const decrypt = this.crypto.canDecrypt || !manifest.encrypted;
    if (!decrypt) {
      const stored = await hashStream(stream);
      const object = stored.sha256 === manifest.object_sha256 ? 'match' : 'mismatch';
      return { ok: object === 'match', name, object, decrypted: false, integrity: null, checksum: null };
    }
    const objectTap = hashingTap();
    const tapped = through(stream, objectTap.stream);
    let tmp: string | null = null;
    try {
      const plain = manifest.encrypted ? await this.crypto.decrypt(tapped) : tapped;
      const received = await this.files.receiveUpload(plain, Number.MAX_SAFE_INTEGER);
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
      };
    } catch (error) {
      if (error instanceof BucketError) {
        throw error;
      }
      // Altered bytes fail age's authentication: that is a damaged object, not a bucket failure.
      this.logger.warn(`Off-site verify of ${name}: the object does not decrypt (${reasonOf(error)})`);
      return { ok: false, name, object: 'mismatch', decrypted: false, integrity: null, checksum: null };
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
          files: this.files,
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
