import {
  BACKUP_PREFIX,
  SAFETY_PREFIX,
  UPLOAD_PREFIX,
  compareNewestFirst,
  formatBackupName,
  parseBackupName,
  validateBackupName,
} from './backup-name';

describe('validateBackupName', () => {
  const hostileStrings: Array<[string, string]> = [
    ['parent traversal', '../x.db'],
    ['double parent traversal', '../../etc/passwd.db'],
    ['bare parent', '..'],
    ['bare dot', '.'],
    ['three dots', '...'],
    ['dot dot db', '..db'],
    ['inner dot dot', 'x..db'],
    ['traversal in the middle', 'a/../b.db'],
    ['absolute path', '/etc/passwd'],
    ['absolute db path', '/tmp/x.db'],
    ['subfolder', 'a/b.db'],
    ['backslash', 'a\\b.db'],
    ['backslash traversal', '..\\x.db'],
    ['windows drive', 'C:\\x.db'],
    ['windows drive relative', 'C:x.db'],
    ['UNC path', '\\\\server\\share\\x.db'],
    ['encoded slash', '..%2fx.db'],
    ['encoded dots', '%2e%2e%2fx.db'],
    ['encoded dots only', '%2e%2e.db'],
    ['encoded NUL', 'x%00.db'],
    ['NUL inside', 'a\0.db'],
    ['NUL at end', 'x.db\0'],
    ['NUL only', '\0'],
    ['NUL before traversal', '\0../x.db'],
    ['fullwidth solidus', 'a\uFF0Fb.db'],
    ['division slash', 'a\u2215b.db'],
    ['fraction slash', 'a\u2044b.db'],
    ['one-dot leader traversal', '\u2024\u2024\u2215x.db'],
    ['one-dot leader as extension dot', 'x\u2024db'],
    ['two-dot leader', '\u2025x.db'],
    ['fullwidth full stop', 'x\uFF0Edb'],
    ['small full stop', '\uFE52\uFE52x.db'],
    ['fullwidth letter', '\uFF58.db'],
    ['cyrillic look-alike', '\u0445.db'],
    ['zero-width space', 'x.db\u200B'],
    ['right-to-left override', '\u202Ebd.x'],
    ['accented letter', '\u00E9.db'],
    ['wrong extension', 'x.db.bak'],
    ['upper-case extension', 'x.DB'],
    ['mixed-case extension', 'x.Db'],
    ['sqlite extension', 'x.sqlite'],
    ['journal file', 'x.db-journal'],
    ['wal file', 'x.db-wal'],
    ['partial file', 'x.db.part'],
    ['no extension', 'x'],
    ['trailing dot', 'x.'],
    ['trailing space', 'x.db '],
    ['leading space', ' x.db'],
    ['inner space', 'x y.db'],
    ['tab', 'x\t.db'],
    ['newline', 'x\n.db'],
    ['trailing newline', 'x.db\n'],
    ['carriage return', 'x\r.db'],
    ['empty', ''],
    ['only extension', '.db'],
    ['hidden file', '.hidden.db'],
    ['our temp file', '.mc-tmp-0123456789abcdef.db'],
    ['our temp part file', '.mc-tmp-0123456789abcdef.db.part'],
    ['too long', `${'a'.repeat(253)}.db`],
    ['very long', `${'a'.repeat(100_000)}.db`],
    ['shell substitution', 'x$(id).db'],
    ['backticks', '`id`.db'],
    ['semicolon', 'x;rm.db'],
    ['pipe', 'x|y.db'],
    ['glob star', '*.db'],
    ['glob question', 'x?.db'],
    ['home folder', '~/x.db'],
    ['colon', 'x:y.db'],
    ['double quote', 'x"y.db'],
    ['single quote', "x'y.db"],
    ['angle brackets', 'x<y>.db'],
    ['percent', 'x%.db'],
    ['plus', 'x+y.db'],
    ['at sign', 'x@y.db'],
  ];

  const hostileValues: Array<[string, unknown]> = [
    ['number', 123],
    ['NaN', Number.NaN],
    ['array', ['x.db']],
    ['object', { name: 'x.db' }],
    ['true', true],
    ['false', false],
    ['boxed string', Object('x.db')],
    ['buffer', Buffer.from('x.db')],
    ['function', () => 'x.db'],
    ['bigint', BigInt(1)],
    ['symbol', Symbol('x.db')],
  ];

  it('has a large hostile table', () => {
    expect(hostileStrings.length + hostileValues.length).toBeGreaterThanOrEqual(50);
  });

  it.each(hostileStrings)('rejects %s', (_label, input) => {
    const result = validateBackupName(input);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.reason.length).toBeGreaterThan(0);
      expect(result.reason.length).toBeLessThan(100);
      // Short inputs such as ".." can appear in a reason by coincidence; longer ones must never be echoed.
      if (input.length >= 5) {
        expect(result.reason).not.toContain(input);
      }
    }
  });

  it.each([null, undefined])('says a missing name (%s) is required', (input) => {
    expect(validateBackupName(input)).toEqual({ ok: false, reason: 'name is required' });
  });

  it.each(hostileValues)('rejects a non-string: %s', (_label, input) => {
    const result = validateBackupName(input);
    expect(result).toEqual({ ok: false, reason: 'Backup name must be a string' });
  });

  it.each([
    'x.db',
    '0.db',
    '_x.db',
    'x-.db',
    'A_b-C.1.db',
    'a.b.c.db',
    'x.db.db',
    'mc-backup-2026-01-01_03-00-00.db',
    'mc-backup-2026-01-01_03-00-00-2.db',
    'mc-upload-2026-12-31_23-59-59.db',
    'mc-safety-2000-02-29_00-00-00-17.db',
    `${'a'.repeat(252)}.db`,
  ])('accepts %s', (name) => {
    expect(validateBackupName(name)).toEqual({ ok: true, name });
  });

  it('gives a distinct reason for a missing name and for a bad extension', () => {
    expect(validateBackupName('')).toEqual({ ok: false, reason: 'Backup name is required' });
    const bad = validateBackupName('x.txt');
    expect(bad.ok).toBe(false);
    expect(bad.ok ? '' : bad.reason).toMatch(/\.db/);
  });
});

describe('formatBackupName', () => {
  const at = new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678));

  it('formats in UTC with second precision', () => {
    expect(formatBackupName(BACKUP_PREFIX, at, 1)).toBe('mc-backup-2026-01-02_03-04-05.db');
  });

  it('adds a suffix from seq 2 on', () => {
    expect(formatBackupName(BACKUP_PREFIX, at, 2)).toBe('mc-backup-2026-01-02_03-04-05-2.db');
    expect(formatBackupName(UPLOAD_PREFIX, at, 13)).toBe('mc-upload-2026-01-02_03-04-05-13.db');
  });

  it('produces names that pass validation', () => {
    for (const prefix of [BACKUP_PREFIX, UPLOAD_PREFIX, SAFETY_PREFIX]) {
      for (const seq of [1, 2, 999]) {
        expect(validateBackupName(formatBackupName(prefix, at, seq)).ok).toBe(true);
      }
    }
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('refuses seq %p', (seq) => {
    expect(() => formatBackupName(BACKUP_PREFIX, at, seq)).toThrow(RangeError);
  });

  it('refuses an invalid date and an unsafe prefix', () => {
    expect(() => formatBackupName(BACKUP_PREFIX, new Date(Number.NaN), 1)).toThrow(RangeError);
    expect(() => formatBackupName('../', at, 1)).toThrow(RangeError);
    expect(() => formatBackupName('.hidden-', at, 1)).toThrow(RangeError);
  });
});

describe('parseBackupName', () => {
  it.each([
    [BACKUP_PREFIX, 'manual'],
    [UPLOAD_PREFIX, 'upload'],
    [SAFETY_PREFIX, 'safety'],
  ])('round-trips %s names', (prefix, kind) => {
    const times = [
      Date.UTC(1999, 11, 31, 23, 59, 59),
      Date.UTC(2024, 1, 29, 0, 0, 0),
      Date.UTC(2026, 6, 15, 12, 30, 1),
    ];
    for (const ms of times) {
      for (const seq of [1, 2, 10, 12345]) {
        const name = formatBackupName(prefix, new Date(ms), seq);
        expect(parseBackupName(name)).toEqual({ prefix, kind, createdAtMs: ms, seq });
      }
    }
  });

  it('drops the milliseconds that the name cannot hold', () => {
    const name = formatBackupName(BACKUP_PREFIX, new Date(Date.UTC(2026, 0, 1, 0, 0, 0, 999)), 1);
    expect(parseBackupName(name)?.createdAtMs).toBe(Date.UTC(2026, 0, 1));
  });

  it.each([
    'x.db',
    'mc-backup-2026-01-01_03-00-00',
    'mc-backup-2026-01-01_03-00-00.db.part',
    'mc-backup-2026-02-30_03-00-00.db',
    'mc-backup-2026-13-01_03-00-00.db',
    'mc-backup-2026-01-01_24-00-00.db',
    'mc-backup-2026-01-01_03-60-00.db',
    'mc-backup-2026-01-01_03-00-00-1.db',
    'mc-backup-2026-01-01_03-00-00-0.db',
    'mc-backup-2026-01-01_03-00-00-02.db',
    'mc-backup-2026-01-01_03-00-00-x.db',
    'mc-backup-2026-1-01_03-00-00.db',
    'MC-BACKUP-2026-01-01_03-00-00.db',
    'mc-other-2026-01-01_03-00-00.db',
    'xmc-backup-2026-01-01_03-00-00.db',
  ])('does not parse %s', (name) => {
    expect(parseBackupName(name)).toBeNull();
  });

  it('orders newest first by time, then by seq', () => {
    const t0 = new Date(Date.UTC(2026, 0, 1, 3, 0, 0));
    const t1 = new Date(Date.UTC(2026, 0, 1, 3, 0, 1));
    const t2 = new Date(Date.UTC(2027, 0, 1, 0, 0, 0));
    const names = [
      formatBackupName(BACKUP_PREFIX, t0, 1),
      formatBackupName(BACKUP_PREFIX, t2, 1),
      formatBackupName(BACKUP_PREFIX, t0, 10),
      formatBackupName(SAFETY_PREFIX, t1, 1),
      formatBackupName(BACKUP_PREFIX, t0, 2),
    ];
    const sorted = names
      .map((name) => {
        const parsed = parseBackupName(name);
        if (!parsed) {
          throw new Error('unparsable');
        }
        return { name, ...parsed };
      })
      .sort(compareNewestFirst)
      .map((p) => p.name);
    expect(sorted).toEqual([
      'mc-backup-2027-01-01_00-00-00.db',
      'mc-safety-2026-01-01_03-00-01.db',
      'mc-backup-2026-01-01_03-00-00-10.db',
      'mc-backup-2026-01-01_03-00-00-2.db',
      'mc-backup-2026-01-01_03-00-00.db',
    ]);
  });
});
