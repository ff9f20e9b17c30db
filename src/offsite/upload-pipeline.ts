import { OperationLock } from '../common/operation-lock';
import { Inject, Injectable } from '@nestjs/common';
import { createReadStream } from 'node:fs';
import { BackupFiles } from '../backups/backup-files';
import { BackupManifests } from '../backups/backup-manifests';
import { parseBackupName } from '../backups/backup-name';
import { Clock } from '../common/clock';
import { BACKGROUND_READ_BYTES } from '../common/io-chunk';
import { AgeCrypto, ageOverhead } from './age-crypto';
import type { OffsiteBucket } from './offsite-bucket';
import { CodedError, OFFSITE_BUCKET, OFFSITE_CRYPTO, SHA256_METADATA } from './offsite-common';
import { OffsiteOutbox, type OutboxRow } from './offsite-outbox';
import { manifestObjectName, objectNameFor, parseRemoteManifest, type RemoteManifest } from './remote-objects';
import { hashingTap, hashStream, through } from './stream-taps';

export interface UploadOutcome {
  objectName: string;
  objectSha256: string;
  objectSize: number;
  sha256: string;
  size: number;
  encrypted: boolean;
  alreadyThere: boolean;
}

/** The time in a backup's name (Unix seconds), or now for a name without one. */
export function createdAtOf(name: string, clock: Clock): number {
  return Math.floor((parseBackupName(name)?.createdAtMs ?? clock.nowMs()) / 1000);
}

/**
 * One backup to the bucket: file → (encrypt) → multipart upload in one pass, hashing the plain bytes (checked
 * against the local manifest before the upload completes) and the stored bytes on the way, then the remote
 * manifest. No temporary file. Nothing is ever overwritten: an existing object counts only when it is provably
 * this backup.
 */
@Injectable()
export class UploadPipeline {
  constructor(
    @Inject(OFFSITE_BUCKET) private readonly bucket: OffsiteBucket | null,
    @Inject(OFFSITE_CRYPTO) private readonly crypto: AgeCrypto,
    private readonly outbox: OffsiteOutbox,
    private readonly files: BackupFiles,
    private readonly manifests: BackupManifests,
    private readonly clock: Clock,
    private readonly lock: OperationLock,
  ) {}

  async upload(name: string, size: number, row: OutboxRow, signal: AbortSignal): Promise<UploadOutcome> {
    const bucket = this.bucket!;
    const encrypted = this.crypto.canEncrypt;
    const objectName = objectNameFor(name, encrypted);
    const manifest = await this.manifests.get(name);
    // The plain sha256 is known before the upload (hashed now for a file that came without one): it is checked as
    // the bytes stream past, and stored as the object's metadata, so a retry can recognise this backup's object.
    const expected = manifest?.sha256 ?? (await this.manifests.hashNow(name, manifest?.kind ?? 'manual'));

    const source = createReadStream(this.files.resolveInside(name), { highWaterMark: BACKGROUND_READ_BYTES });
    const mismatch = (sha256: string): Error | null =>
      sha256 !== expected ? new CodedError('LOCAL_CHECKSUM_MISMATCH') : null;
    // Encrypted: one pass seals and hashes both the plain and the stored bytes (in a worker thread); the check runs
    // before the last chunk leaves, so a file that changed since its manifest never completes an upload.
    const encrypter = encrypted ? this.crypto.encrypter({ hash: true, check: (d) => mismatch(d.plainSha256) }) : null;
    const plainTap = encrypter === null ? hashingTap(mismatch) : null;
    const body =
      encrypter !== null
        ? through(source, encrypter)
        : through(source, (plainTap as ReturnType<typeof hashingTap>).stream);
    const outcome = await bucket.uploadStream(objectName, body, {
      expectedSize: size + (encrypted ? ageOverhead(size) + 4096 : 0),
      contentType: encrypted ? 'application/octet-stream' : 'application/vnd.sqlite3',
      metadata: { [SHA256_METADATA]: expected },
      signal,
    });

    const sha256 = expected;
    let objectSha256: string;
    let objectSize: number;
    let alreadyThere = false;
    if (outcome === 'created') {
      if (encrypter !== null) {
        ({ objectSha256, objectBytes: objectSize } = encrypter.digests());
      } else {
        ({ sha256: objectSha256, bytes: objectSize } = (plainTap as ReturnType<typeof hashingTap>).result());
      }
      // A synchronous write on the shared connection: never while a restore holds the write lock.
      if (this.lock.writesHeld) {
        await this.lock.restoreFinished();
      }
      this.outbox.rememberObject(name, objectName, objectSha256);
    } else {
      // 412: something is there under this name already. Ours from an earlier try, or not ours at all.
      const existing = await this.existingObjectMatches(name, objectName, sha256, row, signal);
      objectSha256 = existing.objectSha256;
      objectSize = existing.objectSize;
      alreadyThere = true;
    }

    const remoteManifest: RemoteManifest = {
      name,
      size,
      sha256,
      object_sha256: objectSha256,
      encrypted,
      created_at: createdAtOf(name, this.clock),
      kind: manifest?.kind ?? parseBackupName(name)?.kind ?? 'upload',
    };
    const put = await bucket.putSmall(
      manifestObjectName(name),
      Buffer.from(JSON.stringify(remoteManifest, null, 2)),
      'application/json',
    );
    if (put === 'exists') {
      const there = parseRemoteManifest(await bucket.getSmall(manifestObjectName(name)));
      if (there === null || there.sha256 !== sha256 || there.object_sha256 !== objectSha256) {
        throw new CodedError('REMOTE_MANIFEST_CONFLICT');
      }
    }
    return { objectName, objectSha256, objectSize, sha256, size, encrypted, alreadyThere };
  }

  /** An object already under `objectName`: this backup's (same bytes as an earlier try, or same plaintext)? */
  private async existingObjectMatches(
    name: string,
    objectName: string,
    sha256: string,
    row: OutboxRow,
    signal: AbortSignal,
  ): Promise<{ objectSha256: string; objectSize: number }> {
    const bucket = this.bucket!;
    const manifest = parseRemoteManifest(await bucket.getSmall(manifestObjectName(name)));
    if (manifest !== null) {
      if (manifest.sha256 !== sha256) {
        throw new CodedError('REMOTE_OBJECT_DIFFERS');
      }
      // The manifest vouches for the object; a full check is what POST /api/backup/remote/verify is for.
      return { objectSha256: manifest.object_sha256, objectSize: manifest.size };
    }
    // No manifest: an earlier try (or a process killed mid-way) stored the object but not its manifest. The object
    // carries the plain sha256 it was made from; hash what is there for its object_sha256.
    const stored = await bucket.getObject(objectName, signal);
    if (stored === null) {
      throw new CodedError('REMOTE_OBJECT_VANISHED');
    }
    const hashed = await hashStream(stored.body);
    const madeFromThis = stored.metadata[SHA256_METADATA] === sha256;
    const knownObject = row.object_name === objectName && row.object_sha256 === hashed.sha256;
    const plaintextMatch = !objectName.endsWith('.age') && hashed.sha256 === sha256;
    if (!madeFromThis && !knownObject && !plaintextMatch) {
      throw new CodedError('REMOTE_OBJECT_DIFFERS');
    }
    return { objectSha256: hashed.sha256, objectSize: hashed.bytes };
  }
}
