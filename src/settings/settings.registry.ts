import { CronTime } from 'cron';
import { cronFieldProblems } from './cron-fields';

/** A stored value is always a string; `value` is the canonical form to store (e.g. `5` → `"5"`). */
export type ValidationResult = { ok: true; value: string } | { ok: false; reason: string };

export type SettingKind = 'boolean' | 'integer' | 'string';

export interface SettingDefinition {
  key: string;
  /** Which typed getter reads it; lets `getBoolean`/`getInt` refuse keys of another kind at compile time. */
  kind: SettingKind;
  default: string;
  description: string;
  category: string;
  validate(raw: unknown): ValidationResult;
}

export const MAX_WEBHOOK_URL_LENGTH = 2048;
/** Far longer than any sensible 5-field expression; keeps absurd input away from the cron parser. */
const MAX_CRON_LENGTH = 200;

function booleanValue(raw: unknown): ValidationResult {
  if (raw === true || raw === 'true') {
    return { ok: true, value: 'true' };
  }
  if (raw === false || raw === 'false') {
    return { ok: true, value: 'false' };
  }
  return { ok: false, reason: 'must be true or false' };
}

function wholeNumber(min: number, max: number): (raw: unknown) => ValidationResult {
  const reason = `must be a whole number from ${min} to ${max}`;
  return (raw) => {
    let parsed: number;
    if (typeof raw === 'number') {
      parsed = raw;
    } else if (typeof raw === 'string' && /^[0-9]{1,10}$/.test(raw)) {
      // Digits only: Number() alone would also take ' 5', '1e2', '0x10' and '' (as 0).
      parsed = Number(raw);
    } else {
      return { ok: false, reason };
    }
    if (!Number.isInteger(parsed) || parsed < min || parsed > max) {
      return { ok: false, reason };
    }
    return { ok: true, value: String(parsed) };
  };
}

/** The common cron macros, stored as the 5 fields they stand for (so every reader sees one form). */
export const CRON_MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

function cronExpression(raw: unknown): ValidationResult {
  const reason =
    'must be a 5-field cron expression (minute hour day-of-month month day-of-week) or one of ' +
    Object.keys(CRON_MACROS).join(', ');
  if (typeof raw !== 'string' || raw.length > MAX_CRON_LENGTH) {
    return { ok: false, reason };
  }
  const macro = CRON_MACROS[raw.trim().toLowerCase()];
  const fields = (macro ?? raw).trim().split(/\s+/);
  // The cron package also takes a leading seconds field and other @aliases; only 5 fields (or a macro above) here.
  if (fields.length !== 5 || fields.some((field) => field.startsWith('@'))) {
    return { ok: false, reason };
  }
  const problems = cronFieldProblems(fields);
  if (problems.length > 0) {
    return { ok: false, reason: problems.join('; ') };
  }
  const normalized = fields.join(' ');
  let time: CronTime;
  try {
    time = new CronTime(normalized, 'UTC');
  } catch {
    return { ok: false, reason };
  }
  try {
    // Parses but never fires (e.g. 30 February): the scheduler could not compute a next run from it.
    time.sendAt();
  } catch {
    return { ok: false, reason: 'never matches a date' };
  }
  return { ok: true, value: normalized };
}

function webhookUrl(raw: unknown): ValidationResult {
  const reason = 'must be empty or an absolute http(s) URL';
  if (typeof raw !== 'string') {
    return { ok: false, reason };
  }
  if (raw === '') {
    return { ok: true, value: '' };
  }
  if (raw.length > MAX_WEBHOOK_URL_LENGTH) {
    return { ok: false, reason: `must be at most ${MAX_WEBHOOK_URL_LENGTH} characters` };
  }
  // new URL() silently strips surrounding whitespace and inner tabs/newlines; what is stored must be what is used.
  if (/[\s\p{Cc}]/u.test(raw)) {
    return { ok: false, reason };
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, reason };
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
    return { ok: false, reason };
  }
  return { ok: true, value: raw };
}

/** Every setting the service knows. A key not listed here is refused on write and ignored on read. */
export const SETTING_DEFINITIONS = [
  {
    key: 'general.alert_webhook_url',
    kind: 'string',
    default: '',
    category: 'general',
    description: 'Where to POST an alert when a backup, restore or drill fails; empty turns alerts off',
    validate: webhookUrl,
  },
  {
    key: 'general.auto_backup',
    kind: 'boolean',
    default: 'false',
    category: 'general',
    description: 'Make a backup on the backup schedule',
    validate: booleanValue,
  },
  {
    key: 'general.backup_cron',
    kind: 'string',
    default: '0 3 * * *',
    category: 'general',
    description: 'When automatic backups run: a 5-field cron expression in UTC, or @daily, @hourly, @weekly …',
    validate: cronExpression,
  },
  {
    key: 'general.backup_retention_count',
    kind: 'integer',
    default: '10',
    category: 'general',
    description: 'How many backups to keep (uploads and safety backups are not counted)',
    validate: wholeNumber(1, 1000),
  },
  {
    key: 'general.backup_retention_days',
    kind: 'integer',
    default: '0',
    category: 'general',
    description: 'Prune backups older than this many days, never the newest one; 0 turns it off',
    validate: wholeNumber(0, 3650),
  },
  {
    key: 'general.offsite_retention_count',
    kind: 'integer',
    default: '30',
    category: 'general',
    description: 'How many mc-backup-… copies to keep in the off-site bucket (never fewer than the newest one)',
    validate: wholeNumber(1, 10000),
  },
  {
    key: 'general.offsite_retention_days',
    kind: 'integer',
    default: '0',
    category: 'general',
    description: 'Delete off-site mc-backup-… copies older than this many days, never the newest; 0 turns it off',
    validate: wholeNumber(0, 3650),
  },
  {
    key: 'general.replication_retention_hours',
    kind: 'integer',
    default: '168',
    category: 'general',
    description: 'The point-in-time window: replicated history older than this many hours is deleted from the bucket',
    validate: wholeNumber(1, 8760),
  },
  {
    key: 'general.replication_snapshot_hours',
    kind: 'integer',
    default: '24',
    category: 'general',
    description: 'Start a new replication generation from a full snapshot at least this often (hours)',
    validate: wholeNumber(1, 168),
  },
  {
    key: 'general.restore_drill',
    kind: 'boolean',
    default: 'true',
    category: 'general',
    description: 'Regularly prove that the newest backup restores',
    validate: booleanValue,
  },
] as const satisfies readonly SettingDefinition[];

type Definitions = (typeof SETTING_DEFINITIONS)[number];
export type SettingKey = Definitions['key'];
export type BooleanSettingKey = Extract<Definitions, { kind: 'boolean' }>['key'];
export type IntegerSettingKey = Extract<Definitions, { kind: 'integer' }>['key'];
export type StringSettingKey = Extract<Definitions, { kind: 'string' }>['key'];

// A Map, not an object lookup, so request keys such as `__proto__` or `constructor` never resolve.
const BY_KEY: ReadonlyMap<string, SettingDefinition> = new Map(SETTING_DEFINITIONS.map((def) => [def.key, def]));

export function findSetting(key: string): SettingDefinition | undefined {
  return BY_KEY.get(key);
}

export function settingDefinition(key: SettingKey): SettingDefinition {
  // Every SettingKey comes from SETTING_DEFINITIONS, so the lookup cannot miss.
  return BY_KEY.get(key)!;
}

/** Every definition, sorted by key (the order of `GET /api/settings`). */
export function allSettings(): SettingDefinition[] {
  return [...SETTING_DEFINITIONS].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
