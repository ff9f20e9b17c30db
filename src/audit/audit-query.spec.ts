import { parseAuditQuery } from './audit-query';

describe('parseAuditQuery', () => {
  it('should default to limit 100, offset 0, no filters', () => {
    expect(parseAuditQuery({})).toEqual({
      ok: true,
      query: { action: undefined, actor: undefined, since: undefined, until: undefined, limit: 100, offset: 0 },
    });
  });

  it('should read every filter', () => {
    expect(
      parseAuditQuery({
        action: 'backup_create',
        actor: 'admin',
        since: '10',
        until: '20',
        limit: '1000',
        offset: '5',
      }),
    ).toEqual({
      ok: true,
      query: { action: 'backup_create', actor: 'admin', since: 10, until: 20, limit: 1000, offset: 5 },
    });
  });

  it.each([
    [{ limit: '0' }],
    [{ limit: '1001' }],
    [{ limit: '-1' }],
    [{ limit: 'ten' }],
    [{ limit: '1.5' }],
    [{ limit: ['1', '2'] }],
    [{ offset: '-5' }],
    [{ offset: 'x' }],
    [{ since: 'yesterday' }],
    [{ until: '1e9' }],
    [{ since: '20', until: '10' }],
    [{ action: 'a'.repeat(65) }],
    [{ action: "x' OR 1=1 --" }],
    [{ actor: ['a', 'b'] }],
  ])('should refuse %j', (raw) => {
    const result = parseAuditQuery(raw);
    expect(result.ok).toBe(false);
  });
});
