export const AUDIT_DEFAULT_LIMIT = 100;
export const AUDIT_MAX_LIMIT = 1000;

export interface AuditQuery {
  action?: string;
  actor?: string;
  since?: number;
  until?: number;
  limit: number;
  offset: number;
}

export type AuditQueryResult = { ok: true; query: AuditQuery } | { ok: false; errors: string[] };

const TEXT_FILTER = /^[A-Za-z0-9._@:-]{1,64}$/;

function wholeNumber(raw: unknown, name: string, min: number, max: number, errors: string[]): number | undefined {
  if (raw === undefined || raw === '') {
    return undefined;
  }
  if (typeof raw !== 'string' || !/^\d+$/.test(raw)) {
    errors.push(`${name} must be a whole number`);
    return undefined;
  }
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    errors.push(`${name} must be between ${min} and ${max}`);
    return undefined;
  }
  return value;
}

function textFilter(raw: unknown, name: string, errors: string[]): string | undefined {
  if (raw === undefined || raw === '') {
    return undefined;
  }
  if (typeof raw !== 'string' || !TEXT_FILTER.test(raw)) {
    errors.push(`${name} must be 1-64 characters of letters, digits and . _ @ : -`);
    return undefined;
  }
  return raw;
}

/** Parses `?action=&actor=&since=&until=&limit=&offset=`; any bad value is reported, none is guessed. */
export function parseAuditQuery(raw: Record<string, unknown>): AuditQueryResult {
  const errors: string[] = [];
  const query: AuditQuery = {
    action: textFilter(raw.action, 'action', errors),
    actor: textFilter(raw.actor, 'actor', errors),
    since: wholeNumber(raw.since, 'since', 0, Number.MAX_SAFE_INTEGER, errors),
    until: wholeNumber(raw.until, 'until', 0, Number.MAX_SAFE_INTEGER, errors),
    limit: wholeNumber(raw.limit, 'limit', 1, AUDIT_MAX_LIMIT, errors) ?? AUDIT_DEFAULT_LIMIT,
    offset: wholeNumber(raw.offset, 'offset', 0, Number.MAX_SAFE_INTEGER, errors) ?? 0,
  };
  if (query.since !== undefined && query.until !== undefined && query.since > query.until) {
    errors.push('since must not be after until');
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, query };
}
