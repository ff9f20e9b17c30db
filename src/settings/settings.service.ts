import { HttpStatus, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Observable, Subject } from 'rxjs';
import { Repository } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import type { AuthUser } from '../auth/auth-user';
import { ApiError } from '../common/api-error';
import { Clock } from '../common/clock';
import type { Statement } from 'better-sqlite3';
import type { SqliteHandle } from '../database/sqlite-handle';
import type { RequestMeta } from '../common/request-meta';
import { SettingEntity } from './setting.entity';
import {
  allSettings,
  BooleanSettingKey,
  findSetting,
  IntegerSettingKey,
  SettingDefinition,
  settingDefinition,
  SettingKey,
} from './settings.registry';

export interface SettingView {
  key: string;
  value: string;
  description: string;
  category: string;
  updated_by: string | null;
  updated_at: number | null;
  is_default: boolean;
}

export interface UpdateSettingsResult {
  updated: string[];
  count: number;
}

/** One key whose effective value an update changed; emitted on `changes$` after the commit. */
export interface SettingChange {
  key: SettingKey;
  oldValue: string;
  newValue: string;
}

/** The detail of the single `settings_update` audit event a request writes. */
export interface SettingsUpdateAuditDetail {
  changes: Record<string, { old: string; new: string }>;
}

export const SETTINGS_UPDATE_ACTION = 'settings_update';

@Injectable()
export class SettingsService implements OnModuleDestroy {
  private readonly logger = new Logger(SettingsService.name);
  private readonly changes = new Subject<SettingChange>();
  /** Serialises updates, so the old values an update audits are the ones it actually replaced. */
  private writeQueue: Promise<unknown> = Promise.resolve();
  private readOne: Statement | undefined;

  /**
   * Emits each changed key after its update has committed (unchanged re-submitted values are not emitted).
   * Subscribers run synchronously inside `update` and must not throw: RxJS rethrows such errors
   * asynchronously, where they would be uncaught.
   */
  readonly changes$: Observable<SettingChange> = this.changes.asObservable();

  constructor(
    @InjectRepository(SettingEntity) private readonly settings: Repository<SettingEntity>,
    private readonly audit: AuditService,
    private readonly clock: Clock,
  ) {}

  onModuleDestroy(): void {
    this.changes.complete();
  }

  /** Every known setting with its effective value, sorted by key. */
  async list(): Promise<SettingView[]> {
    const stored = await this.readStored();
    return allSettings().map((def) => {
      const row = stored.get(def.key);
      return {
        key: def.key,
        value: row?.value ?? def.default,
        description: def.description,
        category: def.category,
        updated_by: row?.updatedBy ?? null,
        updated_at: row?.updatedAt ?? null,
        is_default: row === undefined,
      };
    });
  }

  /**
   * Validates every change first and refuses the whole request (400, nothing stored) if any key is unknown
   * or any value is invalid; otherwise stores them all in one transaction, then audits and notifies.
   */
  async update(changes: unknown, actor: AuthUser, meta: RequestMeta): Promise<UpdateSettingsResult> {
    const validated = validateChanges(changes);
    return this.serialised(() => this.store(validated, actor, meta));
  }

  /**
   * The effective value: the stored one, or the default. Read from the database on every call (a restore or the CLI
   * may have changed it), through one prepared statement: health checks and the scheduler read settings often, and
   * TypeORM's query builder costs several times the read itself.
   */
  get(key: SettingKey): Promise<string> {
    // A throw (no connection, no table) becomes a rejection, as it was through TypeORM.
    return new Promise((resolve) => resolve(this.valueNow(key)));
  }

  async getBoolean(key: BooleanSettingKey): Promise<boolean> {
    return (await this.get(key)) === 'true';
  }

  async getInt(key: IntegerSettingKey): Promise<number> {
    return Number(await this.get(key));
  }

  async getString(key: SettingKey): Promise<string> {
    return this.get(key);
  }

  private async store(
    validated: Array<{ key: SettingKey; value: string }>,
    actor: AuthUser,
    meta: RequestMeta,
  ): Promise<UpdateSettingsResult> {
    const before = await this.readStored();
    const oldValue = (key: SettingKey) => before.get(key)?.value ?? settingDefinition(key).default;
    const now = this.clock.nowSeconds();
    const rows = validated.map(({ key, value }) => ({ key, value, updatedBy: actor.username, updatedAt: now }));

    // One synchronous SQLite transaction on the live connection: with no await inside, no other module's write
    // can land in the middle of it and be rolled back with it (TypeORM shares this one connection).
    const db = this.connection();
    const upsert = db.prepare(
      'INSERT INTO settings (key, value, updated_by, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE ' +
        'SET value = excluded.value, updated_by = excluded.updated_by, updated_at = excluded.updated_at',
    );
    try {
      db.transaction(() => {
        for (const row of rows) {
          upsert.run(row.key, row.value, row.updatedBy, row.updatedAt);
        }
      }).immediate();
    } catch (error) {
      this.logger.error(`Could not store settings ${rows.map((r) => r.key).join(', ')}: ${String(error)}`);
      throw new ApiError(HttpStatus.INTERNAL_SERVER_ERROR, 'Could not save the settings; nothing was changed');
    }

    const detail: SettingsUpdateAuditDetail['changes'] = {};
    for (const { key, value } of validated) {
      detail[key] = { old: oldValue(key), new: value };
    }
    await this.audit.record({
      action: SETTINGS_UPDATE_ACTION,
      actor,
      targetType: 'settings',
      detail: { changes: detail },
      meta,
    });

    for (const { key, value } of validated) {
      const previous = oldValue(key);
      if (previous !== value) {
        this.changes.next({ key, oldValue: previous, newValue: value });
      }
    }

    const updated = validated.map(({ key }) => key);
    return { updated, count: updated.length };
  }

  /** Stored rows of known keys whose value still passes its rule; anything else reads as the default. */
  private async readStored(): Promise<Map<string, SettingEntity>> {
    const rows = await this.settings.find();
    const result = new Map<string, SettingEntity>();
    for (const row of rows) {
      const def = findSetting(row.key);
      const valid = def === undefined ? undefined : this.effective(def, row);
      if (valid !== undefined) {
        result.set(row.key, valid);
      }
    }
    return result;
  }

  /**
   * A stored value that fails today's rule (hand-edited, or restored from an older database) falls back to
   * the default rather than reaching the scheduler or the pruner.
   */
  private effective(def: SettingDefinition, row: SettingEntity): SettingEntity | undefined {
    const check = def.validate(row.value);
    if (check.ok) {
      return { ...row, value: check.value };
    }
    this.logger.warn(`Stored value of ${def.key} is invalid (${check.reason}); using the default`);
    return undefined;
  }

  private valueNow(key: SettingKey): string {
    const def = settingDefinition(key);
    this.readOne ??= this.connection().prepare(
      'SELECT key, value, updated_by AS updatedBy, updated_at AS updatedAt FROM settings WHERE key = ?',
    );
    const row = this.readOne.get(key) as SettingEntity | undefined;
    return (row === undefined ? undefined : this.effective(def, row)?.value) ?? def.default;
  }

  /** The live better-sqlite3 connection TypeORM opened (the same one its repositories use). */
  private connection(): SqliteHandle {
    return (this.settings.manager.connection.driver as unknown as { databaseConnection: SqliteHandle })
      .databaseConnection;
  }

  private serialised<T>(task: () => Promise<T>): Promise<T> {
    const run = this.writeQueue.then(task);
    this.writeQueue = run.catch(() => undefined);
    return run;
  }
}

function validateChanges(changes: unknown): Array<{ key: SettingKey; value: string }> {
  if (!isPlainObject(changes)) {
    throw invalid(['settings: must be an object of key/value pairs']);
  }
  const entries = Object.entries(changes);
  if (entries.length === 0) {
    throw invalid(['settings: must contain at least one key']);
  }
  const problems: string[] = [];
  const validated: Array<{ key: SettingKey; value: string }> = [];
  for (const [key, raw] of entries) {
    const def = findSetting(key);
    if (def === undefined) {
      problems.push(`${printable(key)}: unknown setting`);
      continue;
    }
    const check = def.validate(raw);
    if (check.ok) {
      validated.push({ key: def.key as SettingKey, value: check.value });
    } else {
      problems.push(`${def.key}: ${check.reason}`);
    }
  }
  if (problems.length > 0) {
    throw invalid(problems);
  }
  return validated;
}

function invalid(details: string[]): ApiError {
  return new ApiError(HttpStatus.BAD_REQUEST, 'Invalid settings', { details });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return false;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Unknown keys are echoed back to help the caller; keep them short and free of control characters. */
function printable(key: string): string {
  const clean = key.replace(/\p{Cc}/gu, '?');
  return clean.length > 100 ? `${clean.slice(0, 100)}…` : clean;
}
