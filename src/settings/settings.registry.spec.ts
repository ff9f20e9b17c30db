import { allSettings, findSetting, SETTING_DEFINITIONS, SettingKey } from './settings.registry';

interface Case {
  key: SettingKey;
  good: Array<[raw: unknown, stored: string]>;
  bad: unknown[];
}

const notScalars = [null, undefined, [], ['true'], {}, { value: 1 }];

const cases: Case[] = [
  {
    key: 'general.replication_retention_hours',
    good: [
      [1, '1'],
      [168, '168'],
      ['8760', '8760'],
    ],
    bad: [0, 8761, -1, 1.5, 'x', '', ...notScalars],
  },
  {
    key: 'general.replication_snapshot_hours',
    good: [
      [1, '1'],
      [24, '24'],
      ['168', '168'],
    ],
    bad: [0, 169, -1, 2.5, 'y', '', ...notScalars],
  },
  {
    key: 'general.auto_backup',
    good: [
      [true, 'true'],
      [false, 'false'],
      ['true', 'true'],
      ['false', 'false'],
    ],
    bad: [1, 0, 'yes', 'no', 'TRUE', 'False', ' true', 'true ', '', '1', ...notScalars],
  },
  {
    key: 'general.restore_drill',
    good: [
      [true, 'true'],
      [false, 'false'],
      ['true', 'true'],
      ['false', 'false'],
    ],
    bad: [1, 0, 'on', 'off', 'TRUE', 't', '', ...notScalars],
  },
  {
    key: 'general.backup_retention_count',
    good: [
      [1, '1'],
      [5, '5'],
      [1000, '1000'],
      ['1', '1'],
      ['10', '10'],
      ['1000', '1000'],
      ['007', '7'],
      [1e2, '100'],
    ],
    bad: [
      0,
      -1,
      1001,
      1.5,
      NaN,
      Infinity,
      '0',
      '1001',
      '-1',
      '+5',
      '1.5',
      '1e2',
      '0x10',
      ' 5',
      '5 ',
      '',
      '١٢', // digits, but not ASCII ones
      '99999999999',
      true,
      false,
      ...notScalars,
    ],
  },
  {
    key: 'general.backup_retention_days',
    good: [
      [0, '0'],
      [-0, '0'],
      [30, '30'],
      [3650, '3650'],
      ['0', '0'],
      ['365', '365'],
    ],
    bad: [-1, 3651, 0.5, '3651', '-1', '1e3', ' 1', '', 'thirty', true, ...notScalars],
  },
  {
    key: 'general.offsite_retention_count',
    good: [
      [1, '1'],
      [30, '30'],
      [10000, '10000'],
      ['7', '7'],
    ],
    bad: [0, -1, 10001, 1.5, '0', '10001', '1e3', ' 1', '', 'thirty', true, ...notScalars],
  },
  {
    key: 'general.offsite_retention_days',
    good: [
      [0, '0'],
      [90, '90'],
      [3650, '3650'],
      ['30', '30'],
    ],
    bad: [-1, 3651, 0.5, '3651', '-1', '1e3', ' 1', '', 'thirty', true, ...notScalars],
  },
  {
    key: 'general.backup_cron',
    good: [
      ['0 3 * * *', '0 3 * * *'],
      ['*/15 * * * *', '*/15 * * * *'],
      ['0 3 * * 1-5', '0 3 * * 1-5'],
      ['0 0 1,15 * *', '0 0 1,15 * *'],
      ['30 2 * * sun', '30 2 * * sun'],
      ['0 3 29 2 *', '0 3 29 2 *'],
      ['  0   3 * *\t*  ', '0 3 * * *'],
      // The common macros are stored as the 5 fields they stand for.
      ['@daily', '0 0 * * *'],
      ['@midnight', '0 0 * * *'],
      ['@hourly', '0 * * * *'],
      ['@weekly', '0 0 * * 0'],
      ['@monthly', '0 0 1 * *'],
      ['@yearly', '0 0 1 1 *'],
      [' @Annually ', '0 0 1 1 *'],
    ],
    bad: [
      '',
      '   ',
      'garbage',
      '0 0 3 * * *', // six fields: seconds are not allowed
      '0 3 * *',
      '0 3 * * * *',
      '@reboot',
      '@every 5m',
      '@daily *',
      '60 * * * *',
      '* 24 * * *',
      '0 3 32 * *',
      '0 3 * 13 *',
      '0 3 * * 8',
      '*/0 * * * *',
      '5-1 * * * *',
      '0 3 ? * *',
      '0 3 L * *',
      '0 3 30 2 *', // parses, but 30 February never comes
      `0 3 * * *${' '.repeat(300)}`,
      5,
      true,
      ...notScalars,
    ],
  },
  {
    key: 'general.alert_webhook_url',
    good: [
      ['', ''],
      ['https://hooks.example.com/T000/B000', 'https://hooks.example.com/T000/B000'],
      ['http://10.0.0.5:8080/alert?x=1', 'http://10.0.0.5:8080/alert?x=1'],
      ['https://user:secret@example.com/hook', 'https://user:secret@example.com/hook'],
      ['HTTPS://EXAMPLE.COM/', 'HTTPS://EXAMPLE.COM/'],
      [`https://example.com/${'a'.repeat(2048 - 20)}`, `https://example.com/${'a'.repeat(2048 - 20)}`],
    ],
    bad: [
      'javascript:alert(1)',
      'file:///etc/passwd',
      'ftp://example.com/x',
      'data:text/plain,hi',
      'mailto:ops@example.com',
      'example.com/hook',
      '/relative/path',
      'https://',
      'http://',
      ' https://example.com/',
      'https://example.com/\n',
      'https://exa\tmple.com/',
      'https://exa mple.com/',
      `https://example.com/${'a'.repeat(2048)}`,
      'not a url',
      0,
      false,
      ...notScalars,
    ],
  },
];

describe('settings registry', () => {
  it('should have a case table for every key', () => {
    expect(cases.map((c) => c.key).sort()).toEqual(SETTING_DEFINITIONS.map((def) => def.key).sort());
  });

  it('should list keys sorted, all in a category and described', () => {
    const keys = allSettings().map((def) => def.key);
    expect(keys).toEqual([...keys].sort());
    for (const def of allSettings()) {
      expect(def.category).not.toBe('');
      expect(def.description).not.toBe('');
    }
  });

  it('should know the defaults the contract names', () => {
    expect(findSetting('general.auto_backup')?.default).toBe('false');
    expect(findSetting('general.backup_retention_count')?.default).toBe('10');
    expect(findSetting('general.backup_retention_days')?.default).toBe('0');
    expect(findSetting('general.backup_cron')?.default).toBe('0 3 * * *');
    expect(findSetting('general.alert_webhook_url')?.default).toBe('');
    expect(findSetting('general.restore_drill')?.default).toBe('true');
    expect(findSetting('general.offsite_retention_count')?.default).toBe('30');
    expect(findSetting('general.offsite_retention_days')?.default).toBe('0');
  });

  it.each(['', 'general', 'general.unknown', '__proto__', 'constructor', 'toString', 'GENERAL.AUTO_BACKUP'])(
    'should not know the key %j',
    (key) => {
      expect(findSetting(key)).toBeUndefined();
    },
  );

  describe.each(cases)('$key', ({ key, good, bad }) => {
    const def = findSetting(key)!;

    it('should accept its own default', () => {
      expect(def.validate(def.default)).toEqual({ ok: true, value: def.default });
    });

    it('should have at least 8 bad values in its table', () => {
      expect(bad.length).toBeGreaterThanOrEqual(8);
    });

    it.each(good)('should accept %j and store %j', (raw, stored) => {
      expect(def.validate(raw)).toEqual({ ok: true, value: stored });
    });

    it.each(bad.map((raw) => [raw]))('should reject %j', (raw) => {
      const result = def.validate(raw);
      expect(result.ok).toBe(false);
      if (!result.ok) {
        expect(result.reason).not.toBe('');
      }
    });
  });
});
