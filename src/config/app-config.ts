import * as fs from 'node:fs';
import * as path from 'node:path';
import { isX25519Recipient, looksLikeIdentityFile } from '../offsite/age-crypto';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export const RESTORE_PAUSE_POINTS = ['verify', 'locked', 'copying', 'copied'] as const;
export type RestorePausePoint = (typeof RESTORE_PAUSE_POINTS)[number];
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Thrown when a variable is missing or invalid; its message is the one line printed before exit. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`Invalid configuration: ${variable} ${problem}`);
    this.name = 'ConfigError';
  }
}

/** Off-site copies (contract: "Off-site copies"). Never holds a secret: credentials stay with the AWS SDK's chain. */
export interface OffsiteConfig {
  bucket: string;
  /** An S3-compatible endpoint URL; undefined for AWS itself. */
  endpoint?: string;
  region: string;
  /** Key prefix of every object this service writes or lists, e.g. `mission-control/` (may be empty). */
  prefix: string;
  forcePathStyle: boolean;
  /** age X25519 recipients (`age1…`); empty only when plaintext is explicitly allowed. */
  recipients: string[];
  /** Path of an age identity file, needed only to decrypt (verify in full, pull, disaster restore). */
  identityFile?: string;
  allowPlaintext: boolean;
}

/**
 * The whole configuration, read once from the environment at start-up. Every other module injects this
 * class instead of reading process.env, so tests build one with `loadConfig({...})`.
 */
export class AppConfig {
  readonly port: number;
  readonly host: string;
  /** Absolute path of the main SQLite database. */
  readonly dbPath: string;
  /** Absolute path of the backups folder: `backups/` beside the database. */
  readonly backupsDir: string;
  readonly authUser?: string;
  readonly authPass?: string;
  readonly apiKey?: string;
  readonly cookieSecure: boolean;
  readonly logLevel: LogLevel;
  readonly metricsToken?: string;
  readonly maxUploadBytes: number;
  readonly production: boolean;
  /** Addresses of reverse proxies whose X-Forwarded-For is believed (Express `trust proxy` syntax). */
  readonly trustedProxies: string[];
  /** How long SIGTERM waits for a running backup or restore before closing anyway. */
  readonly shutdownTimeoutMs: number;
  /**
   * Fault injection for the restore kill tests only (MC_TEST_PAUSE_AT): a restore that reaches this point stops
   * there for good, so a test can SIGKILL the process at a known place. Unset in every real deployment.
   */
  readonly testPauseAt?: RestorePausePoint;
  /** Off-site copies; undefined when OFFSITE_S3_BUCKET is not set. */
  readonly offsite?: OffsiteConfig;
  /** How long one bucket request may stay silent before it is abandoned (a stalled connection). */
  readonly offsiteRequestTimeoutMs: number;
  /** Continuous replication of the WAL to the bucket (REPLICATION; on by default when off-site is configured). */
  readonly replication: boolean;
  /** How often new commits are shipped (REPLICATION_SYNC_INTERVAL_MS). */
  readonly replicationSyncIntervalMs: number;

  constructor(values: Omit<AppConfig, never>) {
    Object.assign(this, values);
  }
}

type Env = Record<string, string | undefined>;

function optional(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = optional(env, name);
  if (raw === undefined) {
    return fallback;
  }
  if (!/^\d+$/.test(raw.trim())) {
    throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  }
  const value = Number(raw.trim());
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(name, `must be between ${min} and ${max}, got ${raw}`);
  }
  return value;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = optional(env, name);
  if (raw === undefined) {
    return fallback;
  }
  const normalized = raw.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(normalized)) {
    return true;
  }
  if (['false', '0', 'no', 'off'].includes(normalized)) {
    return false;
  }
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
}

function noControlCharacters(name: string, value: string | undefined): string | undefined {
  // eslint-disable-next-line no-control-regex
  if (value !== undefined && /[\u0000-\u001f\u007f]/.test(value)) {
    throw new ConfigError(name, 'must not contain control characters');
  }
  return value;
}

/** Reads and validates every variable of the contract; throws ConfigError naming the first bad one. */
export function loadConfig(env: Env = process.env): AppConfig {
  const production = env.NODE_ENV === 'production';
  const port = integer(env, 'PORT', 3000, 0, 65535);
  const host = optional(env, 'HOST') ?? '0.0.0.0';
  if (/\s/.test(host)) {
    throw new ConfigError('HOST', `must be a host name or address, got "${host}"`);
  }

  const rawDbPath = optional(env, 'MISSION_CONTROL_DB_PATH') ?? path.join('.data', 'mission-control.db');
  noControlCharacters('MISSION_CONTROL_DB_PATH', rawDbPath);
  if (rawDbPath.endsWith('/') || rawDbPath.endsWith(path.sep)) {
    throw new ConfigError('MISSION_CONTROL_DB_PATH', 'must name a file, not a folder');
  }
  const dbPath = path.resolve(rawDbPath);

  const authUser = noControlCharacters('AUTH_USER', optional(env, 'AUTH_USER'));
  const authPass = noControlCharacters('AUTH_PASS', optional(env, 'AUTH_PASS'));
  if (authUser !== undefined && authPass === undefined) {
    throw new ConfigError('AUTH_PASS', 'must be set when AUTH_USER is set');
  }
  if (authPass !== undefined && authUser === undefined) {
    throw new ConfigError('AUTH_USER', 'must be set when AUTH_PASS is set');
  }
  if (authUser !== undefined && !/^[A-Za-z0-9._@-]{1,64}$/.test(authUser)) {
    throw new ConfigError('AUTH_USER', 'must be 1-64 characters of letters, digits, . _ @ -');
  }

  const apiKey = noControlCharacters('API_KEY', optional(env, 'API_KEY'));
  const metricsToken = noControlCharacters('METRICS_TOKEN', optional(env, 'METRICS_TOKEN'));

  const logLevel = (optional(env, 'LOG_LEVEL') ?? 'info').trim().toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }

  const trustedProxies = (optional(env, 'TRUSTED_PROXIES') ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  for (const entry of trustedProxies) {
    if (!/^[0-9A-Fa-f:.]+(\/\d{1,3})?$|^(loopback|linklocal|uniquelocal)$/.test(entry)) {
      throw new ConfigError('TRUSTED_PROXIES', `must list IP addresses or CIDR ranges, got "${entry}"`);
    }
  }

  const testPauseAt = optional(env, 'MC_TEST_PAUSE_AT');
  if (testPauseAt !== undefined && !(RESTORE_PAUSE_POINTS as readonly string[]).includes(testPauseAt)) {
    throw new ConfigError('MC_TEST_PAUSE_AT', `must be one of ${RESTORE_PAUSE_POINTS.join(', ')}`);
  }
  const offsite = loadOffsite(env);
  const replicationRaw = optional(env, 'REPLICATION')?.trim().toLowerCase();
  if (replicationRaw !== undefined && replicationRaw !== 'on' && replicationRaw !== 'off') {
    throw new ConfigError('REPLICATION', `must be on or off, got "${replicationRaw}"`);
  }
  if (replicationRaw === 'on' && offsite === undefined) {
    throw new ConfigError('REPLICATION', 'is on but off-site storage is not configured (OFFSITE_S3_BUCKET)');
  }
  const replication = offsite !== undefined && replicationRaw !== 'off';

  return new AppConfig({
    port,
    host,
    dbPath,
    backupsDir: path.join(path.dirname(dbPath), 'backups'),
    authUser,
    authPass,
    apiKey,
    cookieSecure: boolean(env, 'MC_COOKIE_SECURE', production),
    logLevel: logLevel as LogLevel,
    metricsToken,
    maxUploadBytes: integer(env, 'MAX_UPLOAD_BYTES', 10 * 1024 ** 3, 1, Number.MAX_SAFE_INTEGER),
    production,
    trustedProxies,
    shutdownTimeoutMs: integer(env, 'SHUTDOWN_TIMEOUT_MS', 60_000, 0, 3_600_000),
    testPauseAt: testPauseAt as RestorePausePoint | undefined,
    offsite,
    offsiteRequestTimeoutMs: integer(env, 'OFFSITE_REQUEST_TIMEOUT_MS', 120_000, 1_000, 3_600_000),
    replication,
    replicationSyncIntervalMs: integer(env, 'REPLICATION_SYNC_INTERVAL_MS', 1000, 100, 60_000),
  });
}

/**
 * OFFSITE_* and BACKUP_ENCRYPTION_*: validated even when off-site is off (a typo in a key must not wait for the
 * day the bucket is configured), and refused when the bucket is set without a way to encrypt.
 */
function loadOffsite(env: Env): OffsiteConfig | undefined {
  const recipients = (optional(env, 'BACKUP_ENCRYPTION_RECIPIENTS') ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  for (const [index, recipient] of recipients.entries()) {
    if (!isX25519Recipient(recipient)) {
      // The key itself is public, but quoting a mangled paste is no help: say which entry.
      throw new ConfigError(
        'BACKUP_ENCRYPTION_RECIPIENTS',
        `entry ${index + 1} is not an age X25519 recipient (age1… with a valid checksum)`,
      );
    }
  }
  const identityFile = noControlCharacters(
    'BACKUP_ENCRYPTION_IDENTITY_FILE',
    optional(env, 'BACKUP_ENCRYPTION_IDENTITY_FILE'),
  );
  if (identityFile !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(identityFile, 'utf8');
    } catch {
      throw new ConfigError('BACKUP_ENCRYPTION_IDENTITY_FILE', 'names a file that cannot be read');
    }
    if (!looksLikeIdentityFile(text)) {
      throw new ConfigError('BACKUP_ENCRYPTION_IDENTITY_FILE', 'holds no AGE-SECRET-KEY-1… identity');
    }
  }
  const allowPlaintext = boolean(env, 'OFFSITE_ALLOW_PLAINTEXT', false);

  const bucket = optional(env, 'OFFSITE_S3_BUCKET')?.trim();
  if (bucket !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$/.test(bucket)) {
    throw new ConfigError('OFFSITE_S3_BUCKET', 'must be a bucket name (3-63 letters, digits, . _ -)');
  }
  const endpoint = optional(env, 'OFFSITE_S3_ENDPOINT')?.trim();
  if (endpoint !== undefined) {
    let url: URL | null = null;
    try {
      url = new URL(endpoint);
    } catch {
      url = null;
    }
    if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.username || url.password) {
      throw new ConfigError('OFFSITE_S3_ENDPOINT', 'must be an http(s) URL without credentials');
    }
  }
  const region = (optional(env, 'OFFSITE_S3_REGION') ?? 'us-east-1').trim();
  if (!/^[A-Za-z0-9-]{1,64}$/.test(region)) {
    throw new ConfigError('OFFSITE_S3_REGION', 'must be a region name such as us-east-1 or auto');
  }
  const prefix = optional(env, 'OFFSITE_S3_PREFIX') ?? 'mission-control/';
  if (!/^[A-Za-z0-9!_.*'()/-]{0,512}$/.test(prefix) || prefix.startsWith('/') || prefix.split('/').includes('..')) {
    throw new ConfigError('OFFSITE_S3_PREFIX', "must be a key prefix of letters, digits and !_.*'()/- (no leading /)");
  }
  const forcePathStyle = boolean(env, 'OFFSITE_S3_FORCE_PATH_STYLE', endpoint !== undefined);

  if (bucket === undefined) {
    return undefined;
  }
  if (recipients.length === 0 && !allowPlaintext) {
    throw new ConfigError(
      'BACKUP_ENCRYPTION_RECIPIENTS',
      'must list at least one age1… key when OFFSITE_S3_BUCKET is set (or set OFFSITE_ALLOW_PLAINTEXT=true)',
    );
  }
  return { bucket, endpoint, region, prefix, forcePathStyle, recipients, identityFile, allowPlaintext };
}
