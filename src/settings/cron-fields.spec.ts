import { findSetting } from './settings.registry';

describe('general.backup_cron reasons', () => {
  const validate = (raw: string) => findSetting('general.backup_cron')!.validate(raw);

  it.each([
    ['61 25 * * *', 'minute must be 0-59 (got 61); hour must be 0-23 (got 25)'],
    ['60 * * * *', 'minute must be 0-59 (got 60)'],
    ['* 24 * * *', 'hour must be 0-23 (got 24)'],
    ['0 3 32 * *', 'day-of-month must be 1-31 (got 32)'],
    ['0 3 0 * *', 'day-of-month must be 1-31 (got 0)'],
    ['0 3 * 13 *', 'month must be 1-12 or jan-dec (got 13)'],
    ['0 3 * * 8', 'day-of-week must be 0-7 or sun-sat (got 8)'],
    ['0 3 * * sunday', 'day-of-week must be 0-7 or sun-sat (got "sunday")'],
    ['0 3 ? * *', 'day-of-month must be 1-31 (got "?")'],
    ['0 3 L * *', 'day-of-month must be 1-31 (got "L")'],
    ['5-70 * * * *', 'minute must be 0-59 (got 70)'],
    ['0,15,,45 * * * *', 'minute must be 0-59 (got "")'],
    ['1-2-3 * * * *', 'minute must be 0-59 (got "1-2-3")'],
    ['5-1 * * * *', 'minute range must run from low to high (got 5-1)'],
    ['0 3 * * fri-mon', 'day-of-week range must run from low to high (got fri-mon)'],
    ['*/0 * * * *', 'minute step must be a whole number from 1 (got "*/0")'],
    ['0 */x * * *', 'hour step must be a whole number from 1 (got "*/x")'],
    ['0 3 1/2/3 * *', 'day-of-month step must be a whole number from 1 (got "1/2/3")'],
  ])('should say what is wrong with %j', (raw, reason) => {
    expect(validate(raw)).toEqual({ ok: false, reason });
  });

  it.each(['0 3 * * 0-7', '0 3 * * 7', '0 3 * jan-mar mon-fri', '*/15 0-23/2 1,15 * *', '00 03 * * *', '5/15 * * * *'])(
    'should accept %j',
    (raw) => {
      expect(validate(raw)).toEqual({ ok: true, value: raw });
    },
  );

  it('should keep the general reason for a wrong number of fields and name the date that never comes', () => {
    expect(validate('0 3 * *')).toEqual({ ok: false, reason: expect.stringMatching(/^must be a 5-field cron/) });
    expect(validate('0 3 30 2 *')).toEqual({ ok: false, reason: 'never matches a date' });
  });
});
