import { HttpStatus } from '@nestjs/common';
import type { AuditActor, AuditService } from '../audit/audit.service';
import type { BackupManifests } from '../backups/backup-manifests';
import { parseBackupName } from '../backups/backup-name';
import { ApiError } from '../common/api-error';
import type { Clock } from '../common/clock';
import type { RequestMeta } from '../common/request-meta';
import { ImportFailedError, type ImportPipeline, ImportRefusedError } from '../recovery/import-pipeline';
import type { AgeCrypto } from './age-crypto';
import { bucketSource } from './bucket-source';
import { BucketError, type OffsiteBucket } from './offsite-bucket';
import type { OffsiteOutbox } from './offsite-outbox';
import { objectNameFor, type RemoteManifest } from './remote-objects';
import { createdAtOf } from './upload-pipeline';
import type { PullResponseDto } from './dto/offsite.dto';

export interface PullDeps {
  bucket: OffsiteBucket;
  crypto: AgeCrypto;
  imports: ImportPipeline;
  manifests: BackupManifests;
  outbox: OffsiteOutbox;
  audit: AuditService;
  clock: Clock;
}

/**
 * The import half of a pull, once the name, the manifest and the identity are settled: the recovery import pipeline
 * with the bucket object as its source (held to its manifest: size cap, stored and plain sha256, decryption), the
 * admission rule, then published under its own name (never over an existing file), with its local manifest, its
 * outbox row (the copy is in the bucket) and the audit row. A copy that is not what its manifest says is a 422 at
 * once, with nothing left behind; BucketError is left to the caller.
 */
export async function downloadAndPublish(
  deps: PullDeps,
  name: string,
  manifest: RemoteManifest,
  actor: AuditActor,
  meta?: Partial<RequestMeta>,
): Promise<PullResponseDto> {
  let admitted;
  try {
    const received = await deps.imports.receive(bucketSource(deps.bucket, deps.crypto, name, manifest));
    admitted = await deps.imports.admit(received, { livePageSize: null });
  } catch (error) {
    throw pullFailure(error);
  }
  if (!(await deps.imports.publishAs(admitted, name))) {
    throw new ApiError(HttpStatus.CONFLICT, 'A local backup of that name exists');
  }
  const { check } = admitted;
  const now = deps.clock.nowSeconds();
  // A pulled copy came from outside, like an upload: count retention never removes it.
  await deps.manifests.record(name, {
    kind: 'upload',
    sha256: admitted.sha256,
    size: admitted.size,
    pageCount: check.pageCount,
    sqliteVersion: check.sqliteVersion,
    schemaVersion: check.schemaVersion,
    quickCheck: 'ok',
    checkedAt: now,
    integrity: 'ok',
    verifiedAt: now,
  });
  deps.outbox.recordUploaded(name, createdAtOf(name, deps.clock), {
    objectName: objectNameFor(name, manifest.encrypted),
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
    detail: { name, size: admitted.size, sha256: admitted.sha256, encrypted: manifest.encrypted },
    meta,
  });
  return {
    success: true,
    // The response names the kind its name says; the manifest records `upload`, which count retention never removes.
    backup: {
      name,
      size: admitted.size,
      created_at: createdAtOf(name, deps.clock),
      kind: parseBackupName(name)?.kind ?? 'upload',
    },
  };
}

function pullFailure(error: unknown): unknown {
  if (error instanceof ImportRefusedError) {
    return new ApiError(HttpStatus.UNPROCESSABLE_ENTITY, `The off-site copy cannot be kept: ${error.message}`);
  }
  if (error instanceof ImportFailedError) {
    if (error.cause instanceof BucketError) {
      return error.cause;
    }
    if (error.kind === 'missing') {
      return new ApiError(HttpStatus.NOT_FOUND, 'No off-site copy of that name');
    }
    if (error.kind === 'too_large') {
      return new ApiError(HttpStatus.UNPROCESSABLE_ENTITY, 'The off-site copy is larger than its manifest says');
    }
    if (error.kind === 'stalled' || error.kind === 'source') {
      return new ApiError(HttpStatus.BAD_GATEWAY, `The download from the bucket failed: ${error.message}`);
    }
    return new ApiError(HttpStatus.UNPROCESSABLE_ENTITY, `The off-site copy is damaged: ${error.message}`);
  }
  return error;
}
