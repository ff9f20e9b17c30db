import * as path from 'node:path';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export const RESTORE_PAUSE_POINTS = ['locked', 'copying', 'copied', 'rolling_back', 'rollback_copied'] as const;
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
  });
}
