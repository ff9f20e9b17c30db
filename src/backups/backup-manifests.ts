import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { In, Repository } from 'typeorm';
import { Clock } from '../common/clock';
import { SQLITE_HANDLE, SqliteHandle } from '../database/sqlite-handle';
import { BackupFiles, type SnapshotInfo } from './backup-files';
import { BackupManifestEntity } from './backup-manifest.entity';
import type { BackupKind } from './backup-name';

export type ManifestFields = Omit<BackupManifestEntity, 'name' | 'createdAt'>;

export type ListedManifest = Pick<BackupManifestEntity, 'kind' | 'sha256' | 'verifiedAt'>;

/** The table of backup manifests, plus the background hashing of files that arrived without one. */
@Injectable()
export class BackupManifests implements OnApplicationShutdown {
  private readonly logger = new Logger(BackupManifests.name);
  private readonly queue = new Map<string, BackupKind>();
  private draining: Promise<void> | null = null;
  private stopped = false;

  constructor(
    @InjectRepository(BackupManifestEntity) private readonly rows: Repository<BackupManifestEntity>,
    private readonly files: BackupFiles,
    private readonly clock: Clock,
    @Inject(SQLITE_HANDLE) private readonly db: SqliteHandle,
  ) {}

  private cached: { version: string; rows: ReadonlyMap<string, BackupManifestEntity> } | null = null;

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    this.queue.clear();
    await this.draining;
  }

  get(name: string): Promise<BackupManifestEntity | null> {
    return this.rows.findOneBy({ name });
  }

  /**
   * Every manifest by name. Cached while the database is unchanged (reading and mapping 1,000
   * rows on every GET /api/backup): `PRAGMA data_version` changes when another connection commits (a restore's
   * copy), `total_changes()` when this one writes a row (any write, through any module). Read-only to callers.
   */
  async byName(): Promise<ReadonlyMap<string, BackupManifestEntity>> {
    const version = this.dataVersion();
    if (version !== null && this.cached?.version === version) {
      return this.cached.rows;
    }
    const rows = new Map((await this.rows.find()).map((row) => [row.name, row]));
    this.cached = version === null ? null : { version, rows };
    return rows;
  }

  private dataVersion(): string | null {
    try {
      const dataVersion = Number(this.db.pragma('data_version', { simple: true }));
      const changes = (this.db.prepare('SELECT total_changes() AS n').get() as { n: number }).n;
      return `${dataVersion}:${changes}`;
    } catch {
      return null;
    }
  }

  /**
   * What a list of backups shows, for every manifest: one raw query. Building 10,000 entities (byName) cost more than
   * the whole 50 ms a list of 10,000 backups may take.
   */
  async listed(): Promise<Map<string, ListedManifest>> {
    const rows = await this.rows.query<Array<ListedManifest & { name: string }>>(
      'SELECT name, kind, sha256, verified_at AS verifiedAt FROM backup_manifests',
    );
    return new Map(rows.map((row) => [row.name, row]));
  }

  /** Inserts or replaces the whole manifest of `name`. */
  /** The manifest of a snapshot this process just made: everything the worker learnt while checking the copy. */
  recordSnapshot(snapshot: SnapshotInfo, kind: BackupKind): Promise<void> {
    return this.record(snapshot.name, {
      kind,
      sha256: snapshot.sha256,
      size: snapshot.size,
      pageCount: snapshot.pages,
      sqliteVersion: snapshot.sqliteVersion,
      schemaVersion: snapshot.schemaVersion,
      quickCheck: snapshot.quickCheck,
      checkedAt: this.clock.nowSeconds(),
    });
  }

  async record(name: string, fields: Partial<ManifestFields> & { kind: BackupKind }): Promise<void> {
    await this.rows.upsert(
      {
        sha256: null,
        size: null,
        pageCount: null,
        sqliteVersion: null,
        schemaVersion: null,
        quickCheck: null,
        checkedAt: null,
        verifiedAt: null,
        integrity: null,
        ...fields,
        name,
        createdAt: this.clock.nowSeconds(),
      },
      ['name'],
    );
  }

  /** Changes some fields of an existing manifest, or creates it with `kind` when there is none. */
  async patch(name: string, kind: BackupKind, fields: Partial<ManifestFields>): Promise<void> {
    const existing = await this.get(name);
    if (existing) {
      await this.rows.update({ name }, fields);
    } else {
      await this.record(name, { ...fields, kind });
    }
  }

  async remove(names: string[]): Promise<void> {
    if (names.length > 0) {
      await this.rows.delete({ name: In(names) });
    }
  }

  /** Forgets manifests whose file is gone (deleted by hand while the service was down). */
  async sweep(present: ReadonlySet<string>): Promise<number> {
    const orphans = (await this.rows.find({ select: { name: true } }))
      .map((row) => row.name)
      .filter((name) => !present.has(name));
    await this.remove(orphans);
    return orphans.length;
  }

  /**
   * Hashes `name` in the background and caches the result. Stream hashing on the main thread: 1 MiB reads, each
   * hashed in well under a millisecond, so the event loop stays free and GET /api/backup never waits for it.
   */
  hashLater(name: string, kind: BackupKind): void {
    if (this.stopped || this.queue.has(name)) {
      return;
    }
    this.queue.set(name, kind);
    this.draining ??= this.drain().finally(() => {
      this.draining = null;
    });
  }

  /** Hashes now (streamed) and caches it; for a download or verify that needs the value. */
  async hashNow(name: string, kind: BackupKind): Promise<string> {
    const hash = await this.files.hash(name);
    await this.cacheHash(name, kind, hash.sha256, hash.size);
    return hash.sha256;
  }

  private async drain(): Promise<void> {
    while (!this.stopped && this.queue.size > 0) {
      const [name, kind] = this.queue.entries().next().value as [string, BackupKind];
      try {
        const existing = await this.get(name);
        if (!existing?.sha256) {
          await this.hashNow(name, kind);
        }
      } catch (error) {
        if (!this.stopped) {
          this.logger.warn(`Could not hash ${name}: ${error instanceof Error ? error.name : 'error'}`);
        }
      } finally {
        this.queue.delete(name);
      }
    }
  }

  private async cacheHash(name: string, kind: BackupKind, sha256: string, size: number): Promise<void> {
    const existing = await this.get(name);
    if (!existing) {
      await this.record(name, { kind, sha256, size });
    } else if (!existing.sha256) {
      await this.rows.update({ name }, { sha256, size });
    }
  }
}
