import { HttpStatus, Inject, Injectable, Optional } from '@nestjs/common';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { ScratchCopy } from '../backups/backup-files';
import { BackupManifests } from '../backups/backup-manifests';
import { UPLOAD_PREFIX } from '../backups/backup-name';
import { ApiError, InputError } from '../common/api-error';
import { Clock } from '../common/clock';
import { AppConfig } from '../config/app-config';
import { SQLITE_HANDLE, SqliteHandle } from '../database/sqlite-handle';
import { BucketError } from '../offsite/offsite-bucket';
import type { RebuildResult } from '../replication/replica-rebuild';
import { PointInTimeUnavailableError, ReplicaDamagedError } from '../replication/replica-window';
import { ReplicaObjectError } from '../replication/replica-store';
import { ReplicationService } from '../replication/replication.service';
import type { RestoreResponseDto } from './dto/recovery.dto';
import { ImportPipeline } from './import-pipeline';
import { type RestoreRequest, RestoreService } from './restore.service';

/** An ISO-8601 moment with a date, a time and a zone, or a 400. */
export function parsePointInTime(raw: unknown): Date {
  if (
    typeof raw !== 'string' ||
    !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/.test(raw)
  ) {
    throw new InputError('point_in_time must be an ISO-8601 time with a zone, e.g. 2026-01-02T09:14:07.250Z');
  }
  const at = new Date(raw);
  if (Number.isNaN(at.getTime())) {
    throw new InputError('point_in_time is not a valid time');
  }
  return at;
}

/**
 * Point-in-time restore: the moment is rebuilt from the replica in the bucket (the generation's snapshot plus every
 * commit observed at or before it) in a scratch folder, brought into the backups folder through the import pipeline
 * and its admission rule as an upload, then restored online exactly as a named backup is.
 */
@Injectable()
export class PointInTimeRestore {
  constructor(
    private readonly imports: ImportPipeline,
    private readonly manifests: BackupManifests,
    private readonly restores: RestoreService,
    private readonly clock: Clock,
    private readonly config: AppConfig,
    @Inject(SQLITE_HANDLE) private readonly db: SqliteHandle,
    @Optional() private readonly replication?: ReplicationService,
  ) {}

  async restore(rawAt: unknown, request: RestoreRequest): Promise<RestoreResponseDto> {
    const at = parsePointInTime(rawAt);
    if (this.replication === undefined) {
      throw new InputError('Point-in-time restore needs replication (off-site storage with REPLICATION on)');
    }
    const scratchDir = await fsp.mkdtemp(path.join(path.dirname(this.config.dbPath), '.mc-pitr-'));
    let scratch: Promise<ScratchCopy | null> = Promise.resolve(null);
    try {
      const { received, built: rebuilt } = await this.imports.receiveBuilt((tmp) => this.rebuild(at, scratchDir, tmp));
      // The restore's scratch copy is made beside the admission (bytes copied and hashed on one core, pages checked
      // on the other), and finished before publishing renames its source. The restore holds its sha256 to the
      // admitted one; if the copy failed, the restore makes its own.
      scratch = this.imports.scratchCopyOf(received).catch(() => null);
      const livePageSize = Number(this.db.pragma('page_size', { simple: true }));
      const [admitted, copied] = await Promise.all([this.imports.admit(received, { livePageSize }), scratch]);
      const now = this.clock.now();
      const name = await this.imports.publishNew(admitted, UPLOAD_PREFIX, now);
      const nowSeconds = Math.floor(now.getTime() / 1000);
      await this.manifests.record(name, {
        kind: 'upload',
        sha256: admitted.sha256,
        size: admitted.size,
        pageCount: admitted.check.pageCount,
        sqliteVersion: admitted.check.sqliteVersion,
        schemaVersion: admitted.check.schemaVersion,
        quickCheck: 'ok',
        checkedAt: nowSeconds,
        integrity: 'ok',
        verifiedAt: nowSeconds,
      });
      const moment = {
        point_in_time: at.toISOString(),
        restored_to: rebuilt.restoredTo.toISOString(),
        generation: rebuilt.generation,
      };
      const published = await this.imports.statPublished(name);
      const done = await this.restores.restore(name, {
        ...request,
        detail: { ...request.detail, ...moment },
        ...(published !== null ? { verified: { check: admitted.check, ...published } } : {}),
        ...(copied !== null ? { scratch: Promise.resolve(copied) } : {}),
      });
      return { ...done, point_in_time: moment.point_in_time, restored_to: moment.restored_to };
    } finally {
      // The restore discards it once it ran; this covers a refusal or a failure before.
      const copy = await scratch;
      if (copy !== null) {
        await this.imports.discardScratch(copy).catch(() => undefined);
      }
      await fsp.rm(scratchDir, { recursive: true, force: true });
    }
  }

  private async rebuild(at: Date, scratchDir: string, into: string): Promise<RebuildResult> {
    try {
      return await (this.replication as ReplicationService).rebuildAt(at, { scratchDir, into, admissionChecks: true });
    } catch (error) {
      if (error instanceof PointInTimeUnavailableError) {
        throw new InputError(error.message, {
          restorable_from: error.window.restorable_from?.toISOString() ?? null,
          restorable_to: error.window.restorable_to?.toISOString() ?? null,
          gaps: error.window.gaps.map((gap) => ({ from: gap.from.toISOString(), to: gap.to.toISOString() })),
        });
      }
      if (error instanceof ReplicaDamagedError) {
        throw new ApiError(HttpStatus.UNPROCESSABLE_ENTITY, error.message, {
          last_good: error.lastGood.toISOString(),
        });
      }
      if (error instanceof ReplicaObjectError) {
        throw new ApiError(HttpStatus.UNPROCESSABLE_ENTITY, error.message);
      }
      if (error instanceof BucketError) {
        throw new ApiError(HttpStatus.BAD_GATEWAY, `The bucket did not answer: ${error.code}`);
      }
      throw error;
    }
  }
}
