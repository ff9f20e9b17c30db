import { formatBytes, formatDuration, formatTable, formatUtc } from './format';

describe('format', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [77824, '76.0 KiB'],
    [5 * 1024 ** 3, '5.0 GiB'],
  ])('should format %d bytes as %s', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  it('should print times in UTC like backup names', () => {
    expect(formatUtc(1767236400)).toBe('2026-01-01 03:00:00');
  });

  it('should print durations in ms below a second', () => {
    expect(formatDuration(812.4)).toBe('812 ms');
    expect(formatDuration(1530)).toBe('1.5 s');
  });

  it('should align columns without trailing spaces', () => {
    expect(
      formatTable([
        ['NAME', 'SIZE'],
        ['a-long-name.db', '1 B'],
      ]),
    ).toBe('NAME            SIZE\na-long-name.db  1 B');
  });
});
