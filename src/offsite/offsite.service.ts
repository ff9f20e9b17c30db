import {
  BeforeApplicationShutdown,
  HttpStatus,
  Inject,
  Injectable,
  Logger,
  OnModuleDestroy,
  OnModuleInit,
} from '@nestjs/common';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { pipeline, Readable, Transform, type TransformCallback } from 'node:stream';
import type { Subscription } from 'rxjs';
import { AuditActor, AuditService, SYSTEM_ACTORS } from '../audit/audit.service';
import { BackupFiles } from '../backups/backup-files';
import { BackupManifests } from '../backups/backup-manifests';
import { parseBackupName, SAFETY_PREFIX, validateBackupName } from '../backups/backup-name';
import { selectForPruning } from '../backups/retention';
import { ApiError } from '../common/api-error';
import { Clock } from '../common/clock';
import { OpsEvents } from '../common/ops-events';
import { RemoteCopies } from '../common/remote-copies';
import type { RequestMeta } from '../common/request-meta';
import { AppConfig, type OffsiteConfig } from '../config/app-config';
import { SettingsService } from '../settings/settings.service';
import { AgeCrypto, ageOverhead } from './age-crypto';
import { BucketError, describeBucketError, OffsiteBucket } from './offsite-bucket';
import { OffsiteOutbox, type OutboxRow } from './offsite-outbox';
import { listRemoteBackups } from './remote-catalog';
import {
  backupNameOfObject,
  manifestObjectName,
  objectNameFor,
  type RemoteManifest,
  parseRemoteManifest,
} from './remote-objects';
import type { PullResponseDto, RemoteListDto, RemoteSyncDto, RemoteVerifyDto } from './dto/offsite.dto';

export const OFFSITE_BUCKET = Symbol('OFFSITE_BUCKET');
export const OFFSITE_CRYPTO = Symbol('OFFSITE_CRYPTO');
export const NOT_CONFIGURED = 'Off-site storage is not configured';
/** User metadata on every stored object: the sha256 of the plain backup it was made from. */
const SHA256_METADATA = 'mc-sha256';
/** How often the worker looks at the local outbox for rows other processes (the CLI) queued. Never the bucket. */
const OUTBOX_POLL_MS = 5 * 60 * 1000;

/** An error for the audit trail and the `error` field: a bucket code, or an error's code or class. */
function reasonOf(error: unknown): string {
  if (error instanceof BucketError) {
    return error.code;
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[A-Z0-9_]{2,40}$/.test(code)) {
    return code;
  }
  return describeBucketError(error).code;
}

class CodedError extends Error {
  constructor(readonly code: string) {
    super(code);
    this.name = 'CodedError';
  }
}

/** A pass-through that hashes and counts; `check` may fail the stream at its end (before the upload completes). */
function hashingTap(onEnd?: (sha256: string, bytes: number) => Error | null): {
  stream: Transform;
  result: () => { sha256: string; bytes: number };
} {
  const hash = createHash('sha256');
  let bytes = 0;
  let digest: string | null = null;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
      hash.update(chunk);
      bytes += chunk.length;
      callback(null, chunk);
    },
    flush(callback: TransformCallback): void {
      digest = hash.digest('hex');
      callback(onEnd?.(digest, bytes) ?? null);
    },
  });
  return {
    stream,
    result: () => {
      if (digest === null) {
        throw new CodedError('STREAM_INCOMPLETE');
      }
      return { sha256: digest, bytes };
    },
  };
}

/** `source` piped through `through`; an error on either side destroys both (so an upload sees it). */
function through<T extends Transform>(source: Readable, tap: T): T {
  pipeline(source, tap, () => undefined);
  return tap;
}

/** Hashes a whole stream. */
async function hashStream(stream: Readable): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/**
 * Off-site copies: the outbox worker (upload, retention in the bucket) and the remote routes (list, sync, verify,
 * pull). Listens to published backups on OpsEvents; `src/backups` knows nothing of this module. The worker runs
 * only in the service (see {@link start}); the CLI uses the same code for its one-off commands.
 */
@Injectable()
export class OffsiteService implements OnModuleInit, OnModuleDestroy, BeforeApplicationShutdown {
  private readonly logger = new Logger(OffsiteService.name);
  private readonly offsite?: OffsiteConfig;
  private subscription?: Subscription;
  private running = false;
  private draining: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly stopping = new AbortController();

  constructor(
    config: AppConfig,
    @Inject(OFFSITE_BUCKET) private readonly bucket: OffsiteBucket | null,
    @Inject(OFFSITE_CRYPTO) private readonly crypto: AgeCrypto,
    private readonly outbox: OffsiteOutbox,
    private readonly files: BackupFiles,
    private readonly manifests: BackupManifests,
    private readonly audit: AuditService,
    private readonly settings: SettingsService,
    private readonly clock: Clock,
    private readonly events: OpsEvents,
    private readonly remoteCopies: RemoteCopies,
  ) {
    this.offsite = config.offsite;
  }

  get configured(): boolean {
    return this.bucket !== null;
  }

  onModuleInit(): void {
    if (!this.configured) {
      return;
    }
    this.remoteCopies.attach(this.outbox);
    // Synchronous on purpose: the row exists before the backup's request goes on to local retention.
    this.subscription = this.events.subscribe((event) => {
      if ((event.type === 'backup_succeeded' || event.type === 'backup_imported') && this.eligible(event.name)) {
        this.outbox.enqueue(event.name, this.createdAtOf(event.name));
        this.kick();
      }
    });
  }

  onModuleDestroy(): void {
    this.subscription?.unsubscribe();
    this.bucket?.destroy();
  }

  /** Stops the worker: an upload in flight is aborted (its multipart upload too) and stays queued. */
  async beforeApplicationShutdown(): Promise<void> {
    this.running = false;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.stopping.abort();
    await this.draining?.catch(() => undefined);
  }

  /**
   * The service's worker, at start-up: aborts multipart uploads a killed process left, queues every local backup
   * the outbox does not know (a crash between publishing and queueing loses nothing), forgets rows of files that
   * are gone, and tries everything waiting now (a restart is often what fixed the bucket).
   */
  async start(): Promise<void> {
    if (!this.configured || this.running) {
      return;
    }
    this.running = true;
    try {
      const aborted = await this.bucket!.abortStaleUploads();
      if (aborted > 0) {
        this.logger.warn(`Aborted ${aborted} interrupted multipart upload(s) in the bucket`);
      }
    } catch (error) {
      this.logger.warn(`Could not look for interrupted multipart uploads: ${reasonOf(error)}`);
    }
    await this.reconcile();
    this.outbox.makeAllDue();
    this.kick();
  }

  private async reconcile(): Promise<void> {
    const local = await this.files.list();
    const present = new Set(local.map((file) => file.name));
    let queued = 0;
    for (const file of local) {
      if (this.eligible(file.name) && this.outbox.enqueue(file.name, Math.floor(file.createdAtMs / 1000))) {
        queued++;
      }
    }
    let forgotten = 0;
    for (const row of this.outbox.all()) {
      if (!present.has(row.name)) {
        this.outbox.remove(row.name);
        forgotten++;
      }
    }
    if (queued > 0 || forgotten > 0) {
      this.logger.log(`Off-site outbox: queued ${queued} local backup(s), forgot ${forgotten} no longer on disk`);
    }
  }

  private eligible(name: string): boolean {
    return !name.startsWith(SAFETY_PREFIX) && validateBackupName(name).ok;
  }

  private createdAtOf(name: string): number {
    return Math.floor((parseBackupName(name)?.createdAtMs ?? this.clock.nowMs()) / 1000);
  }

  /** Starts a drain soon (never inside the caller's own work). */
  private kick(): void {
    if (!this.running) {
      return;
    }
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (!this.running) {
      return;
    }
    if (this.timer !== null) {
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(
      () => {
        this.timer = null;
        void this.drain();
      },
      Math.max(0, Math.min(delayMs, OUTBOX_POLL_MS)),
    );
    this.timer.unref();
  }

  /** Uploads what is due, one backup at a time; a second call during a drain runs once more after it. */
  drain(): Promise<void> {
    if (this.draining !== null) {
      this.again = true;
      return this.draining;
    }
    this.draining = (async () => {
      do {
        this.again = false;
        for (const row of this.outbox.waiting({ dueAtMs: this.clock.nowMs() })) {
          if (this.stopping.signal.aborted) {
            return;
          }
          await this.uploadOne(row);
        }
      } while (this.again && !this.stopping.signal.aborted);
    })()
      .catch((error: unknown) => this.logger.error(`Off-site worker failed: ${reasonOf(error)}`))
      .finally(() => {
        this.draining = null;
        const due = this.outbox.nextDueMs();
        this.schedule(due === null ? OUTBOX_POLL_MS : due - this.clock.nowMs());
      });
    return this.draining;
  }

  /** POST /api/backup/remote/sync: tries every waiting upload now, back-off or not, and counts the outcome. */
  async sync(): Promise<RemoteSyncDto> {
    this.requireConfigured();
    await this.draining?.catch(() => undefined);
    this.outbox.makeAllDue();
    const wasRunning = this.running;
    // In the CLI there is no worker; the drain runs all the same.
    this.running = true;
    try {
      await this.drain();
    } finally {
      this.running = wasRunning;
    }
    const rows = this.outbox.all();
    return {
      uploaded: rows.filter((row) => row.status === 'uploaded').length,
      pending: rows.filter((row) => row.status === 'pending').length,
      failed: rows.filter((row) => row.status === 'failed').length,
    };
  }

  // ---------------------------------------------------------------- upload

  private async uploadOne(row: OutboxRow): Promise<void> {
    const { name } = row;
    const started = performance.now();
    const stat = await this.files.statBackup(name);
    if (stat === null) {
      // Deleted before it could be copied (the delete's audit row says so): nothing left to send.
      this.outbox.remove(name);
      await this.failed(name, 'LOCAL_FILE_GONE', row.attempts + 1, null);
      return;
    }
    try {
      const outcome = await this.send(name, stat.size, row);
      this.outbox.markUploaded(name, outcome);
      const durationMs = performance.now() - started;
      this.logger.log(
        `Off-site copy of ${name}: ${outcome.objectSize} bytes in ${Math.round(durationMs)} ms` +
          (outcome.alreadyThere ? ' (already in the bucket)' : ''),
      );
      await this.audit.record({
        action: 'offsite_upload',
        actor: SYSTEM_ACTORS.system,
        targetType: 'backup',
        targetId: name,
        detail: {
          name,
          object: outcome.objectName,
          size: outcome.size,
          object_size: outcome.objectSize,
          sha256: outcome.sha256,
          object_sha256: outcome.objectSha256,
          encrypted: outcome.encrypted,
          already_there: outcome.alreadyThere,
          duration_ms: Math.round(durationMs),
        },
      });
      this.events.emit({ type: 'offsite_uploaded', name, size: outcome.size, durationMs });
    } catch (error) {
      if (this.stopping.signal.aborted) {
        this.logger.warn(`Off-site copy of ${name} interrupted by shutdown; it stays queued`);
        return;
      }
      const reason = reasonOf(error);
      const attempts = this.outbox.markFailed(name, reason);
      await this.failed(name, reason, attempts, this.outbox.get(name)?.next_attempt_at_ms ?? null);
      return;
    }
    await this.pruneRemote();
  }

  private async failed(name: string, reason: string, attempts: number, nextAttemptAtMs: number | null): Promise<void> {
    this.logger.warn(
      `Off-site copy of ${name} failed (attempt ${attempts}): ${reason}` +
        (nextAttemptAtMs === null ? '' : `; next try at ${new Date(nextAttemptAtMs).toISOString()}`),
    );
    await this.audit.record({
      action: 'offsite_failed',
      actor: SYSTEM_ACTORS.system,
      targetType: 'backup',
      targetId: name,
      detail: {
        name,
        reason,
        attempts,
        next_attempt_at: nextAttemptAtMs === null ? null : Math.floor(nextAttemptAtMs / 1000),
      },
    });
    this.events.emit({ type: 'offsite_failed', name, reason, attempts });
  }

  /**
   * file → (encrypt) → multipart upload in one pass, hashing the plain bytes (checked against the manifest before
   * the upload completes) and the stored bytes on the way. No temporary file. Then the manifest. Nothing is ever
   * overwritten: an existing object counts only when it is provably this backup.
   */
  private async send(
    name: string,
    size: number,
    row: OutboxRow,
  ): Promise<{
    objectName: string;
    objectSha256: string;
    objectSize: number;
    sha256: string;
    size: number;
    encrypted: boolean;
    alreadyThere: boolean;
  }> {
    const bucket = this.bucket!;
    const encrypted = this.crypto.canEncrypt;
    const objectName = objectNameFor(name, encrypted);
    const manifest = await this.manifests.get(name);
    // The plain sha256 is known before the upload (hashed now for a file that came without one): it is checked as
    // the bytes stream past, and stored as the object's metadata, so a retry can recognise this backup's object.
    const expected = manifest?.sha256 ?? (await this.manifests.hashNow(name, manifest?.kind ?? 'manual'));

    const plainTap = hashingTap((sha256) => (sha256 !== expected ? new CodedError('LOCAL_CHECKSUM_MISMATCH') : null));
    const source = createReadStream(this.files.resolveInside(name), { highWaterMark: 1024 * 1024 });
    const plain = through(source, plainTap.stream);
    const body = encrypted ? await this.crypto.encrypt(plain) : plain;
    const objectTap = hashingTap();
    const outcome = await bucket.uploadStream(objectName, through(body, objectTap.stream), {
      expectedSize: size + (encrypted ? ageOverhead(size) + 4096 : 0),
      contentType: encrypted ? 'application/octet-stream' : 'application/vnd.sqlite3',
      metadata: { [SHA256_METADATA]: expected },
      signal: this.stopping.signal,
    });

    const sha256 = expected;
    let objectSha256: string;
    let objectSize: number;
    let alreadyThere = false;
    if (outcome === 'created') {
      plainTap.result();
      ({ sha256: objectSha256, bytes: objectSize } = objectTap.result());
      this.outbox.rememberObject(name, objectName, objectSha256);
    } else {
      // 412: something is there under this name already. Ours from an earlier try, or not ours at all.
      const existing = await this.existingObjectMatches(name, objectName, sha256, row);
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
      created_at: this.createdAtOf(name),
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
    const stored = await bucket.getObject(objectName, this.stopping.signal);
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

  // ---------------------------------------------------------------- retention in the bucket

  /**
   * General.offsite_retention_count / _days on the `mc-backup-…` objects under the prefix, never the newest: one
   * LIST and the deletes it needs. A delete the bucket refuses (Object Lock: AccessDenied) is logged, audited and
   * skipped; it does not stop the others. Never throws.
   */
  async pruneRemote(actor: AuditActor = SYSTEM_ACTORS.system): Promise<string[]> {
    const pruned: string[] = [];
    try {
      const count = await this.settings.getInt('general.offsite_retention_count');
      const maxAgeDays = await this.settings.getInt('general.offsite_retention_days');
      const objects = await this.bucket!.list();
      const present = new Set(objects.map((o) => o.name));
      const backups = new Map<string, { name: string; createdAtMs: number; seq: number; objects: string[] }>();
      for (const object of objects) {
        const name = backupNameOfObject(object.name);
        const parsed = name === null ? null : parseBackupName(name);
        if (name === null || parsed === null || backups.has(name)) {
          continue;
        }
        const keys = [object.name, manifestObjectName(name)].filter((key) => present.has(key));
        backups.set(name, { name, createdAtMs: parsed.createdAtMs, seq: parsed.seq, objects: keys });
      }
      const doomed = selectForPruning([...backups.values()], { count, maxAgeDays, nowMs: this.clock.nowMs() });
      for (const backup of doomed) {
        const deleted: string[] = [];
        const locked: string[] = [];
        for (const key of backup.objects) {
          if ((await this.bucket!.delete(key)) === 'deleted') {
            deleted.push(key);
          } else {
            locked.push(key);
          }
        }
        if (locked.length > 0) {
          this.logger.warn(`Off-site retention: the bucket refused to delete ${backup.name} (Object Lock?); skipped`);
        } else {
          pruned.push(backup.name);
        }
        await this.audit.record({
          action: 'offsite_prune',
          actor,
          targetType: 'backup',
          targetId: backup.name,
          detail: {
            name: backup.name,
            deleted,
            refused: locked,
            retention_count: count,
            retention_days: maxAgeDays,
          },
        });
      }
    } catch (error) {
      this.logger.warn(`Off-site retention failed: ${reasonOf(error)}`);
    }
    return pruned;
  }

  // ---------------------------------------------------------------- remote routes

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
  async listRemote(): Promise<RemoteListDto> {
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
   * (never over an existing file); then it restores like any backup.
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
    const objectName = objectNameFor(name, manifest.encrypted);
    let tmp: string | null = null;
    try {
      const stream = await bucket.getStream(objectName);
      if (stream === null) {
        throw new ApiError(HttpStatus.NOT_FOUND, 'No off-site copy of that name');
      }
      const objectTap = hashingTap();
      const tapped = through(stream, objectTap.stream);
      let plain: Readable;
      try {
        plain = manifest.encrypted ? await this.crypto.decrypt(tapped) : tapped;
      } catch {
        tapped.destroy();
        throw new ApiError(HttpStatus.UNPROCESSABLE_ENTITY, 'The off-site copy does not decrypt with the identity');
      }
      // Hashed as it arrives: the check below may switch a WAL-flagged copy to a standalone file.
      const plainTap = hashingTap();
      try {
        tmp = (await this.files.receiveUpload(through(plain, plainTap.stream), Number.MAX_SAFE_INTEGER)).tmp;
      } catch (error) {
        if (error instanceof BucketError) {
          throw error;
        }
        throw new ApiError(HttpStatus.UNPROCESSABLE_ENTITY, 'The off-site copy is damaged (it does not decrypt)');
      }
      const check = await this.files.inspectTemp(tmp, { integrity: 'full', hash: true, makeStandalone: true });
      if (objectTap.result().sha256 !== manifest.object_sha256 || plainTap.result().sha256 !== manifest.sha256) {
        throw new ApiError(HttpStatus.UNPROCESSABLE_ENTITY, 'The off-site copy does not match its manifest');
      }
      if (check.integrity !== 'ok') {
        throw new ApiError(HttpStatus.UNPROCESSABLE_ENTITY, 'The off-site copy fails integrity_check');
      }
      const published = await this.files.publishTempAs(tmp, name);
      if (!published) {
        throw new ApiError(HttpStatus.CONFLICT, 'A local backup of that name exists');
      }
      tmp = null;
      const now = this.clock.nowSeconds();
      const kind = parseBackupName(name)?.kind ?? 'upload';
      await this.manifests.record(name, {
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
      this.outbox.recordUploaded(name, this.createdAtOf(name), {
        objectName,
        objectSha256: manifest.object_sha256,
        sha256: manifest.sha256,
        size: manifest.size,
        encrypted: manifest.encrypted,
      });
      await this.audit.record({
        action: 'offsite_pull',
        actor,
        targetType: 'backup',
        targetId: name,
        detail: { name, size: check.size, sha256: check.sha256, encrypted: manifest.encrypted },
        meta,
      });
      return {
        success: true,
        backup: { name, size: check.size, created_at: this.createdAtOf(name), kind },
      };
    } catch (error) {
      return this.bucketFailed(error);
    } finally {
      if (tmp !== null) {
        await this.files.discardTemp(tmp).catch(() => undefined);
      }
    }
  }
}

function validName(rawName: unknown): string {
  const result = validateBackupName(rawName);
  if (!result.ok) {
    throw new ApiError(HttpStatus.BAD_REQUEST, result.reason);
  }
  return result.name;
}
