import { HttpStatus } from '@nestjs/common';
import type { Readable } from 'node:stream';
import type { AuditActor, AuditService } from '../audit/audit.service';
import { UploadTooLargeError, type BackupFiles } from '../backups/backup-files';
import type { BackupManifests } from '../backups/backup-manifests';
import { parseBackupName } from '../backups/backup-name';
import { ApiError } from '../common/api-error';
import type { Clock } from '../common/clock';
import type { RequestMeta } from '../common/request-meta';
import type { AgeCrypto } from './age-crypto';
import { BucketError, type OffsiteBucket } from './offsite-bucket';
import type { OffsiteOutbox } from './offsite-outbox';
import { maxObjectBytes } from './remote-catalog';
import { objectNameFor, type RemoteManifest } from './remote-objects';
import { cappedBody, hashingTap, through } from './stream-taps';
import { createdAtOf } from './upload-pipeline';
import type { PullResponseDto } from './dto/offsite.dto';

const TOO_LARGE = 'The off-site copy is larger than its manifest says';

export interface PullDeps {
  bucket: OffsiteBucket;
  crypto: AgeCrypto;
  files: BackupFiles;
  manifests: BackupManifests;
  outbox: OffsiteOutbox;
  audit: AuditService;
  clock: Clock;
}

/**
 * The import half of a pull, once the name, the manifest and the identity are settled: download → decrypt →
 * temp file in the backups folder → sha256 against the manifest → integrity_check → publish under its own name
 * (never over an existing file), then its local manifest, its outbox row (the copy is in the bucket) and the
 * audit row. Throws ApiError (4xx) for a copy that is not what its manifest says, BucketError for the bucket.
 */
export async function downloadAndPublish(
  deps: PullDeps,
  name: string,
  manifest: RemoteManifest,
  actor: AuditActor,
  meta?: Partial<RequestMeta>,
): Promise<PullResponseDto> {
  const { bucket, crypto, files } = deps;
  const objectName = objectNameFor(name, manifest.encrypted);
  let tmp: string | null = null;
  try {
    const object = await bucket.getObject(objectName);
    if (object === null) {
      throw new ApiError(HttpStatus.NOT_FOUND, 'No off-site copy of that name');
    }
    // Never more than the manifest promised: a huge object behind a small manifest stops at once.
    let capped: ReturnType<typeof cappedBody>;
    try {
      capped = cappedBody(object, maxObjectBytes(manifest));
    } catch {
      throw new ApiError(HttpStatus.UNPROCESSABLE_ENTITY, TOO_LARGE);
    }
    const objectTap = hashingTap();
    const tapped = through(capped.body, objectTap.stream);
    let plain: Readable;
    try {
      plain = manifest.encrypted ? await crypto.decrypt(tapped) : tapped;
    } catch {
      tapped.destroy();
      throw new ApiError(HttpStatus.UNPROCESSABLE_ENTITY, 'The off-site copy does not decrypt with the identity');
    }
    // Hashed as it arrives: the check below may switch a WAL-flagged copy to a standalone file.
    const plainTap = hashingTap();
    try {
      tmp = (await files.receiveUpload(through(plain, plainTap.stream), manifest.size)).tmp;
    } catch (error) {
      if (error instanceof BucketError) {
        throw error;
      }
      if (capped.exceeded() || error instanceof UploadTooLargeError) {
        throw new ApiError(HttpStatus.UNPROCESSABLE_ENTITY, TOO_LARGE);
      }
      throw new ApiError(HttpStatus.UNPROCESSABLE_ENTITY, 'The off-site copy is damaged (it does not decrypt)');
    }
    const check = await files.inspectTemp(tmp, { integrity: 'full', hash: true, makeStandalone: true });
    if (objectTap.result().sha256 !== manifest.object_sha256 || plainTap.result().sha256 !== manifest.sha256) {
      throw new ApiError(HttpStatus.UNPROCESSABLE_ENTITY, 'The off-site copy does not match its manifest');
    }
    if (check.integrity !== 'ok') {
      throw new ApiError(HttpStatus.UNPROCESSABLE_ENTITY, 'The off-site copy fails integrity_check');
    }
    const published = await files.publishTempAs(tmp, name);
    if (!published) {
      throw new ApiError(HttpStatus.CONFLICT, 'A local backup of that name exists');
    }
    tmp = null;
    const now = deps.clock.nowSeconds();
    const kind = parseBackupName(name)?.kind ?? 'upload';
    await deps.manifests.record(name, {
      kind: manifest.kind === 'scheduled' && kind === 'manual' ? 'scheduled' : kind,
      sha256: check.sha256,
      size: check.size,
      pageCount: check.pageCount,
      sqliteVersion: check.sqliteVersion,
      schemaVersion: check.schemaVersion,
      quickCheck: 'ok',
      checkedAt: now,
      integrity: 'ok',
      verifiedAt: now,
    });
    deps.outbox.recordUploaded(name, createdAtOf(name, deps.clock), {
      objectName,
      objectSha256: manifest.object_sha256,
      sha256: manifest.sha256,
      size: manifest.size,
      encrypted: manifest.encrypted,
    });
    await deps.audit.record({
      action: 'offsite_pull',
      actor,
      targetType: 'backup',
      targetId: name,
      detail: { name, size: check.size, sha256: check.sha256, encrypted: manifest.encrypted },
      meta,
    });
    return {
      success: true,
      backup: { name, size: check.size, created_at: createdAtOf(name, deps.clock), kind },
    };
  } finally {
    if (tmp !== null) {
      await files.discardTemp(tmp).catch(() => undefined);
    }
  }
}
