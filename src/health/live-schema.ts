import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import type { Subscription } from 'rxjs';
import { checkSchema, type SchemaObject } from '../database/schema-check';
import { OpsEvents } from '../common/ops-events';
import { SQLITE_HANDLE, SqliteHandle } from '../database/sqlite-handle';

/**
 * Whether the live database still has this application's schema: checked at start-up (which
 * never fails on it) and after every restore, through the live SQLite connection. Health reports what is wrong.
 */
@Injectable()
export class LiveSchema implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(LiveSchema.name);
  private subscription: Subscription | undefined;
  private verdict: { problems: string[]; version: number | null } = { problems: [], version: null };

  constructor(
    @Inject(SQLITE_HANDLE) private readonly db: SqliteHandle,
    private readonly events: OpsEvents,
  ) {}

  get problems(): string[] {
    return this.verdict.problems;
  }

  get version(): number | null {
    return this.verdict.version;
  }

  async onModuleInit(): Promise<void> {
    await this.check();
    this.subscription = this.events.subscribe(async (event) => {
      if (event.type === 'restore_succeeded' || event.type === 'restore_failed') {
        await this.check();
      }
    });
  }

  onModuleDestroy(): void {
    this.subscription?.unsubscribe();
  }

  async check(): Promise<void> {
    let problems: string[];
    let version: number | null = null;
    try {
      const objects = this.db.prepare('SELECT type, name, tbl_name, sql FROM sqlite_schema').all() as SchemaObject[];
      if (!objects.some((o) => o.type === 'table' && o.name === 'migrations')) {
        problems = ['table "migrations" is missing'];
      } else {
        const row = this.db.prepare('SELECT MAX("timestamp") AS v FROM "migrations"').get() as { v: unknown };
        version = row.v === null || row.v === undefined ? null : Number(row.v);
        problems =
          version === null ? ['no migration has been applied'] : (await checkSchema(objects, version)).problems;
      }
    } catch (error) {
      problems = [`the schema could not be read (${error instanceof Error ? error.message : 'error'})`];
    }
    if (problems.length > 0 && problems.join() !== this.verdict.problems.join()) {
      this.logger.error(
        `The live database's schema is not this application's: ${problems.join('; ')}. The service keeps running ` +
          'to report it; restore a backup (npm run cli -- backups restore NAME) to repair it.',
      );
    }
    this.verdict = { problems, version };
  }
}
