import { DEFAULT_BACKUP_CRON, nextRunAfter, shouldCatchUp } from './schedule-timing';

const HOUR = 60 * 60 * 1000;

describe('schedule timing', () => {
  describe(nextRunAfter.name, () => {
    it.each([
      ['2026-01-01T00:00:00Z', '2026-01-01T03:00:00.000Z'],
      ['2026-01-01T02:59:59Z', '2026-01-01T03:00:00.000Z'],
      ['2026-01-01T03:00:00Z', '2026-01-02T03:00:00.000Z'],
      ['2026-01-01T03:00:01Z', '2026-01-02T03:00:00.000Z'],
      ['2026-01-01T23:30:00Z', '2026-01-02T03:00:00.000Z'],
      ['2026-12-31T12:00:00Z', '2027-01-01T03:00:00.000Z'],
      ['2028-02-28T04:00:00Z', '2028-02-29T03:00:00.000Z'],
      // Daylight-saving changes elsewhere must not move a UTC schedule.
      ['2026-03-29T00:30:00Z', '2026-03-29T03:00:00.000Z'],
      ['2026-10-25T02:30:00Z', '2026-10-25T03:00:00.000Z'],
    ])('from %s the daily 03:00 UTC job next runs at %s', (from, expected) => {
      expect(new Date(nextRunAfter(DEFAULT_BACKUP_CRON, new Date(from))).toISOString()).toBe(expected);
    });

    it('should follow other expressions', () => {
      expect(new Date(nextRunAfter('*/15 * * * *', new Date('2026-01-01T10:07:00Z'))).toISOString()).toBe(
        '2026-01-01T10:15:00.000Z',
      );
      expect(new Date(nextRunAfter('0 4 * * 0', new Date('2026-11-25T12:00:00Z'))).toISOString()).toBe(
        '2026-11-29T04:00:00.000Z',
      );
    });
  });

  describe(shouldCatchUp.name, () => {
    const now = Date.parse('2026-06-01T10:00:00Z');
    it.each([
      [false, null, false],
      [false, now - 72 * HOUR, false],
      [true, null, true],
      [true, now - 25 * HOUR, true],
      [true, now - 24 * HOUR - 1, true],
      [true, now - 24 * HOUR, false],
      [true, now - 7 * HOUR, false],
      [true, now, false],
    ])('enabled=%s, last success %s → %s', (enabled, lastSuccessAt, expected) => {
      expect(shouldCatchUp({ enabled, lastSuccessAt, nowMs: now })).toBe(expected);
    });
  });
});
