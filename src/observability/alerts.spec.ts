import { alertFor, withoutPaths } from './alerts';

const AT = new Date('2026-01-01T03:00:02.123Z');

describe('alertFor', () => {
  it('should name the task of a scheduled backup auto_backup and keep the trigger as a detail', () => {
    expect(alertFor({ type: 'backup_failed', kind: 'scheduled', reason: 'ENOSPC', task: 'cron' }, AT)).toEqual({
      event: 'backup_failed',
      task: 'auto_backup',
      message: 'Backup failed (automatic backup): ENOSPC',
      text: 'Backup failed (automatic backup): ENOSPC',
      at: '2026-01-01T03:00:02.123Z',
      service: 'mission-control-backups',
      details: { kind: 'scheduled', trigger: 'cron', reason: 'ENOSPC' },
    });
  });

  it('should name a manual backup manual, a restore restore and a drill restore_drill', () => {
    expect(alertFor({ type: 'backup_failed', kind: 'manual', reason: 'EEXIST' }, AT)?.task).toBe('manual');
    expect(alertFor({ type: 'restore_failed', name: 'a.db', reason: 'x', rolledBack: false }, AT)).toMatchObject({
      task: 'restore',
      message: 'Restore of a.db failed: x',
    });
    expect(alertFor({ type: 'drill_failed', name: 'b.db', reason: 'y' }, AT)).toMatchObject({
      task: 'restore_drill',
      message: 'Restore drill of b.db failed: y',
    });
  });

  it('should ignore events that are not failures', () => {
    expect(alertFor({ type: 'backup_succeeded', name: 'a.db', size: 1, durationMs: 1, kind: 'manual' }, AT)).toBeNull();
    expect(alertFor({ type: 'backup_pruned', name: 'a.db' }, AT)).toBeNull();
    expect(alertFor({ type: 'restore_succeeded', name: 'a.db', durationMs: 1 }, AT)).toBeNull();
    expect(alertFor({ type: 'drill_succeeded', name: 'a.db', durationMs: 1 }, AT)).toBeNull();
  });
});

describe('withoutPaths', () => {
  it.each([
    ['ENOSPC', 'ENOSPC'],
    ['cannot open /var/lib/mc/backups/x.db', 'cannot open [path]'],
    ["EACCES: permission denied, open '/tmp/a b'", "EACCES: permission denied, open '[path] b'"],
    ['at C:\\data\\mc.db now', 'at [path] now'],
    ['see file:///etc/passwd', 'see [path]'],
    ['ratio 3/4 kept', 'ratio 3/4 kept'],
  ])('should turn %j into %j', (input, expected) => {
    expect(withoutPaths(input)).toBe(expected);
  });

  it('should cap the length', () => {
    expect(withoutPaths('x'.repeat(1000))).toHaveLength(300);
  });
});
