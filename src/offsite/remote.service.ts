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
import { ImportFailedError, ImportPipeline, type ReceivedFile } from '../recovery/import-pipeline';
import { bucketSource } from './bucket-source';
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
   * The copy through the recovery import pipeline, held to its manifest: the stored object's size and sha256; with
   * the identity, also decrypted into a scratch file beside the backups, its sha256, then integrity_check.
   * `checked` says what was; `ok` is null when only the stored bytes could be checked. The scratch file is always
   * removed. No such object: 404; an object without a valid manifest: 422.
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
    if (manifest === null) {
      const object = await bucket.getObject(objectNameFor(name, true));
      if (object === null) {
        throw new ApiError(HttpStatus.NOT_FOUND, 'No off-site copy of that name');
      }
      object.body.destroy();
      throw new ApiError(
        HttpStatus.UNPROCESSABLE_ENTITY,
        'The off-site copy has no valid manifest: there is nothing to check it against',
      );
    }
    const source = bucketSource(bucket, this.crypto, name, manifest);
    const decrypts = this.crypto.canDecrypt || !manifest.encrypted;
    const checks: VerifyCheck[] = !decrypts
      ? ['object_sha256']
      : manifest.encrypted
        ? ['object_sha256', 'decrypt', 'sha256', 'integrity']
        : ['object_sha256', 'sha256', 'integrity'];
    const verdict = { name, decrypted: false, integrity: null, checksum: null };
    let received: ReceivedFile | null = null;
    try {
      if (!decrypts) {
        await this.imports.measureStored(source);
        // Only the stored bytes could be checked: a match proves the bucket kept them, not what is inside.
        return { ...verdict, ok: null, object: 'match', checked: checks };
      }
      received = await this.imports.receive(source);
      const check = await this.files.inspectTemp(received.tmp, {
        integrity: 'full',
        hash: false,
        makeStandalone: false,
      });
      const integrity = check.integrity ?? 'unreadable';
      return {
        ok: integrity === 'ok',
        name,
        object: 'match',
        decrypted: manifest.encrypted,
        integrity,
        checksum: 'match',
        checked: checks,
      };
    } catch (error) {
      if (!(error instanceof ImportFailedError)) {
        throw error;
      }
      return this.verifyFailed(name, manifest, error);
    } finally {
      if (received !== null) {
        await this.imports.discard(received).catch(() => undefined);
      }
    }
  }

  /** What a broken promise of the copy says about it; a bucket that failed is not a verdict on the copy. */
  private verifyFailed(name: string, manifest: RemoteManifest, error: ImportFailedError): RemoteVerifyDto {
    if (error.kind === 'missing') {
      throw new ApiError(HttpStatus.NOT_FOUND, 'No off-site copy of that name');
    }
    if (error.kind === 'source' || error.kind === 'stalled') {
      throw error.cause instanceof BucketError ? error.cause : error;
    }
    const failed = { ok: false, name, decrypted: false, integrity: null, checksum: null } as const;
    if (error.kind === 'too_large') {
      return { ...failed, object: 'mismatch', checked: ['object_size'] };
    }
    if (error.kind === 'mismatch' && error.brokenHash === 'sha256') {
      return {
        ...failed,
        object: 'match',
        decrypted: manifest.encrypted,
        checksum: 'mismatch',
        checked: manifest.encrypted ? ['object_sha256', 'decrypt', 'sha256'] : ['object_sha256', 'sha256'],
      };
    }
    if (error.kind === 'mismatch') {
      return { ...failed, object: 'mismatch', checked: ['object_sha256'] };
    }
    // The stored bytes matched their hash yet do not decrypt: not for this identity, or sealed wrongly.
    this.logger.warn(`Off-site verify of ${name}: the object does not decrypt (${reasonOf(error.cause ?? error)})`);
    return { ...failed, object: 'match', checked: ['object_sha256', 'decrypt'] };
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
