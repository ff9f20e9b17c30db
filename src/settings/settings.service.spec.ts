import { HttpStatus, Logger } from '@nestjs/common';
import type Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import type { AuditRecord, AuditService } from '../audit/audit.service';
import type { AuthUser } from '../auth/auth-user';
import { ApiError } from '../common/api-error';
import { Clock } from '../common/clock';
import type { RequestMeta } from '../common/request-meta';
import { SettingEntity } from './setting.entity';
import { SETTING_DEFINITIONS } from './settings.registry';
import { SettingChange, SettingsService } from './settings.service';

class FixedClock extends Clock {
  seconds = 1_767_225_600;

  override nowMs(): number {
    return this.seconds * 1000;
  }
}

const admin: AuthUser = { id: 1, username: 'alice', role: 'admin', via: 'session' };
const meta: RequestMeta = { ip: '203.0.113.7', userAgent: 'jest' };

describe(SettingsService.name, () => {
  let dir: string;
  let dataSource: DataSource;
  let db: Database.Database;
  let audited: AuditRecord[];
  let clock: FixedClock;
  let service: SettingsService;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'mc-settings-'));
    dataSource = new DataSource({
      type: 'better-sqlite3',
      database: path.join(dir, 'test.db'),
      entities: [SettingEntity],
      synchronize: false,
      logging: false,
    });
    await dataSource.initialize();
    await dataSource.query(
      'CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_by TEXT, updated_at INTEGER NOT NULL)',
    );
    db = (dataSource.driver as unknown as { databaseConnection: Database.Database }).databaseConnection;
    audited = [];
    const audit = {
      record: async (entry: AuditRecord) => {
        audited.push(entry);
      },
    } as unknown as AuditService;
    clock = new FixedClock();
    service = new SettingsService(dataSource.getRepository(SettingEntity), audit, clock);
  });

  afterEach(async () => {
    service.onModuleDestroy();
    await dataSource.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const storedRows = () => db.prepare('SELECT key, value, updated_by, updated_at FROM settings ORDER BY key').all();

  /** Runs an update expected to fail and returns the ApiError it threw. */
  async function refused(changes: unknown): Promise<ApiError> {
    const error: unknown = await service.update(changes, admin, meta).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ApiError);
    return error as ApiError;
  }

  describe('list', () => {
    it('should list every registry key with its default, sorted', async () => {
      const settings = await service.list();
      expect(settings.map((s) => s.key)).toEqual(SETTING_DEFINITIONS.map((def) => def.key).sort());
      for (const setting of settings) {
        const def = SETTING_DEFINITIONS.find((d) => d.key === setting.key)!;
        expect(setting).toEqual({
          key: def.key,
          value: def.default,
          description: def.description,
          category: def.category,
          updated_by: null,
          updated_at: null,
          is_default: true,
        });
      }
    });

    it('should ignore stored rows of unknown keys and fall back to the default for invalid stored values', async () => {
      const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
      db.prepare('INSERT INTO settings VALUES (?, ?, ?, ?)').run('general.removed', 'x', 'bob', 1);
      db.prepare('INSERT INTO settings VALUES (?, ?, ?, ?)').run('general.backup_retention_count', 'lots', 'bob', 1);

      const settings = await service.list();

      expect(settings.map((s) => s.key)).not.toContain('general.removed');
      expect(settings.find((s) => s.key === 'general.backup_retention_count')).toMatchObject({
        value: '10',
        is_default: true,
        updated_by: null,
      });
      await expect(service.getInt('general.backup_retention_count')).resolves.toBe(10);
      expect(warn).toHaveBeenCalledWith(expect.stringContaining('general.backup_retention_count is invalid'));
      warn.mockRestore();
    });
  });

  describe('update', () => {
    it('should store the values as strings, report the keys and audit old and new values', async () => {
      const result = await service.update(
        { 'general.backup_retention_count': 5, 'general.auto_backup': true, 'general.backup_cron': '30  2 * * *' },
        admin,
        meta,
      );

      expect(result).toEqual({
        updated: ['general.backup_retention_count', 'general.auto_backup', 'general.backup_cron'],
        count: 3,
      });
      expect(storedRows()).toEqual([
        { key: 'general.auto_backup', value: 'true', updated_by: 'alice', updated_at: clock.seconds },
        { key: 'general.backup_cron', value: '30 2 * * *', updated_by: 'alice', updated_at: clock.seconds },
        { key: 'general.backup_retention_count', value: '5', updated_by: 'alice', updated_at: clock.seconds },
      ]);
      expect(audited).toEqual([
        {
          action: 'settings_update',
          actor: admin,
          targetType: 'settings',
          detail: {
            changes: {
              'general.backup_retention_count': { old: '10', new: '5' },
              'general.auto_backup': { old: 'false', new: 'true' },
              'general.backup_cron': { old: '0 3 * * *', new: '30 2 * * *' },
            },
          },
          meta,
        },
      ]);
      const listed = await service.list();
      expect(listed.find((s) => s.key === 'general.backup_retention_count')).toMatchObject({
        value: '5',
        updated_by: 'alice',
        updated_at: clock.seconds,
        is_default: false,
      });
    });

    it('should audit the previous stored value as old on a second update', async () => {
      await service.update({ 'general.backup_retention_count': '5' }, admin, meta);
      clock.seconds += 60;
      await service.update({ 'general.backup_retention_count': '7' }, { ...admin, username: 'bob' }, meta);

      expect(audited[1].detail).toEqual({ changes: { 'general.backup_retention_count': { old: '5', new: '7' } } });
      expect(storedRows()).toEqual([
        { key: 'general.backup_retention_count', value: '7', updated_by: 'bob', updated_at: clock.seconds },
      ]);
    });

    it('should store nothing when one key is good and another is bad', async () => {
      const error = await refused({ 'general.backup_retention_count': 5, 'general.auto_backup': 'yes' });

      expect(error.getStatus()).toBe(HttpStatus.BAD_REQUEST);
      expect(error.getResponse()).toEqual({
        error: 'Invalid settings',
        details: ['general.auto_backup: must be true or false'],
      });
      expect(storedRows()).toEqual([]);
      expect(audited).toEqual([]);
    });

    it('should name every problem, unknown keys included', async () => {
      const error = await refused({
        'general.nope': 1,
        'general.backup_retention_count': 0,
        'general.backup_cron': '0 0 3 * * *',
      });

      const details = (error.getResponse() as { details: string[] }).details;
      expect(details).toHaveLength(3);
      expect(details).toEqual(
        expect.arrayContaining([
          'general.nope: unknown setting',
          'general.backup_retention_count: must be a whole number from 1 to 1000',
          expect.stringMatching(/^general\.backup_cron: /),
        ]),
      );
      expect(storedRows()).toEqual([]);
    });

    it('should refuse an own __proto__ key as unknown, as JSON.parse produces it', async () => {
      const error = await refused(JSON.parse('{"__proto__": {"x": 1}}'));
      expect((error.getResponse() as { details: string[] }).details).toEqual(['__proto__: unknown setting']);
    });

    it.each([null, undefined, 'general.auto_backup=true', 5, [], [['general.auto_backup', true]], new Date(), {}])(
      'should refuse %j as the settings object',
      async (changes) => {
        const error = await refused(changes);
        expect(error.getStatus()).toBe(HttpStatus.BAD_REQUEST);
        expect((error.getResponse() as { error: string }).error).toBe('Invalid settings');
        expect(storedRows()).toEqual([]);
      },
    );

    it('should store nothing, audit nothing and emit nothing when the write fails part-way', async () => {
      db.exec(`CREATE TRIGGER refuse_drill BEFORE INSERT ON settings WHEN NEW.key = 'general.restore_drill'
               BEGIN SELECT RAISE(ABORT, 'refused'); END`);
      const emitted: SettingChange[] = [];
      service.changes$.subscribe((change) => emitted.push(change));
      const logged = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);

      await expect(
        service.update({ 'general.auto_backup': true, 'general.restore_drill': false }, admin, meta),
      ).rejects.toThrow();
      expect(logged).toHaveBeenCalledWith(expect.stringContaining('Could not store settings'));
      logged.mockRestore();

      expect(storedRows()).toEqual([]);
      expect(audited).toEqual([]);
      expect(emitted).toEqual([]);
      // The failed update must not block the next one.
      await expect(service.update({ 'general.auto_backup': true }, admin, meta)).resolves.toEqual({
        updated: ['general.auto_backup'],
        count: 1,
      });
    });

    it('should audit each concurrent update against the value it replaced', async () => {
      await Promise.all([
        service.update({ 'general.backup_retention_count': 5 }, admin, meta),
        service.update({ 'general.backup_retention_count': 7 }, admin, meta),
        service.update({ 'general.backup_retention_count': 9 }, admin, meta),
      ]);

      expect(audited.map((entry) => entry.detail)).toEqual([
        { changes: { 'general.backup_retention_count': { old: '10', new: '5' } } },
        { changes: { 'general.backup_retention_count': { old: '5', new: '7' } } },
        { changes: { 'general.backup_retention_count': { old: '7', new: '9' } } },
      ]);
      await expect(service.getInt('general.backup_retention_count')).resolves.toBe(9);
    });
  });

  describe('getters', () => {
    it('should read defaults before anything is stored', async () => {
      await expect(service.getBoolean('general.auto_backup')).resolves.toBe(false);
      await expect(service.getBoolean('general.restore_drill')).resolves.toBe(true);
      await expect(service.getInt('general.backup_retention_count')).resolves.toBe(10);
      await expect(service.getInt('general.backup_retention_days')).resolves.toBe(0);
      await expect(service.getString('general.backup_cron')).resolves.toBe('0 3 * * *');
      await expect(service.getString('general.alert_webhook_url')).resolves.toBe('');
    });

    it('should read new values right after an update', async () => {
      await service.update(
        {
          'general.auto_backup': 'true',
          'general.restore_drill': false,
          'general.backup_retention_count': '25',
          'general.backup_retention_days': 30,
          'general.backup_cron': '*/5 * * * *',
          'general.alert_webhook_url': 'https://hooks.example.com/alert',
        },
        admin,
        meta,
      );

      await expect(service.getBoolean('general.auto_backup')).resolves.toBe(true);
      await expect(service.getBoolean('general.restore_drill')).resolves.toBe(false);
      await expect(service.getInt('general.backup_retention_count')).resolves.toBe(25);
      await expect(service.getInt('general.backup_retention_days')).resolves.toBe(30);
      await expect(service.getString('general.backup_cron')).resolves.toBe('*/5 * * * *');
      await expect(service.getString('general.alert_webhook_url')).resolves.toBe('https://hooks.example.com/alert');
    });

    it('should see a value written to the database behind its back (no stale cache)', async () => {
      await expect(service.getInt('general.backup_retention_days')).resolves.toBe(0);
      db.prepare('INSERT INTO settings VALUES (?, ?, ?, ?)').run('general.backup_retention_days', '14', 'restore', 1);
      await expect(service.getInt('general.backup_retention_days')).resolves.toBe(14);
    });
  });

  describe('changes$', () => {
    it('should emit each changed key after the commit, and not unchanged ones', async () => {
      const seen: Array<SettingChange & { committed: unknown }> = [];
      service.changes$.subscribe((change) => {
        const row = db.prepare('SELECT value FROM settings WHERE key = ?').get(change.key) as
          { value: string } | undefined;
        seen.push({ ...change, committed: row?.value });
      });

      await service.update({ 'general.backup_cron': '0 4 * * *', 'general.auto_backup': false }, admin, meta);

      // auto_backup was already false: stored and audited, but nothing to react to.
      expect(seen).toEqual([
        { key: 'general.backup_cron', oldValue: '0 3 * * *', newValue: '0 4 * * *', committed: '0 4 * * *' },
      ]);
    });

    it('should emit nothing for a refused update', async () => {
      const seen: SettingChange[] = [];
      service.changes$.subscribe((change) => seen.push(change));

      await refused({ 'general.backup_cron': '0 4 * * *', 'general.auto_backup': 'on' });

      expect(seen).toEqual([]);
    });
  });
});
