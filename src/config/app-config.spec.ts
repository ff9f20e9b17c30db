import * as path from 'node:path';
import { ConfigError, loadConfig } from './app-config';

describe('loadConfig', () => {
  it('should apply the contract defaults to an empty environment', () => {
    const config = loadConfig({});
    expect(config.port).toBe(3000);
    expect(config.host).toBe('0.0.0.0');
    expect(config.dbPath).toBe(path.resolve('.data/mission-control.db'));
    expect(config.backupsDir).toBe(path.resolve('.data/backups'));
    expect(config.cookieSecure).toBe(false);
    expect(config.logLevel).toBe('info');
    expect(config.maxUploadBytes).toBe(10737418240);
    expect(config.apiKey).toBeUndefined();
    expect(config.trustedProxies).toEqual([]);
  });

  it('should default the Secure cookie flag on in production', () => {
    expect(loadConfig({ NODE_ENV: 'production' }).cookieSecure).toBe(true);
    expect(loadConfig({ NODE_ENV: 'production', MC_COOKIE_SECURE: 'false' }).cookieSecure).toBe(false);
  });

  it('should read every variable', () => {
    const config = loadConfig({
      PORT: '8080',
      HOST: '127.0.0.1',
      MISSION_CONTROL_DB_PATH: '/srv/mc/main.db',
      AUTH_USER: 'root',
      AUTH_PASS: 'secret-password',
      API_KEY: 'k'.repeat(32),
      MC_COOKIE_SECURE: 'true',
      LOG_LEVEL: 'debug',
      METRICS_TOKEN: 'metrics',
      MAX_UPLOAD_BYTES: '1024',
      TRUSTED_PROXIES: '10.0.0.1, 192.168.0.0/16',
    });
    expect(config).toMatchObject({
      port: 8080,
      host: '127.0.0.1',
      dbPath: '/srv/mc/main.db',
      backupsDir: '/srv/mc/backups',
      authUser: 'root',
      authPass: 'secret-password',
      cookieSecure: true,
      logLevel: 'debug',
      metricsToken: 'metrics',
      maxUploadBytes: 1024,
      trustedProxies: ['10.0.0.1', '192.168.0.0/16'],
    });
  });

  it.each([
    [{ PORT: 'abc' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ PORT: '-1' }, 'PORT'],
    [{ PORT: '80.5' }, 'PORT'],
    [{ HOST: 'bad host' }, 'HOST'],
    [{ MISSION_CONTROL_DB_PATH: '/srv/mc/' }, 'MISSION_CONTROL_DB_PATH'],
    [{ MISSION_CONTROL_DB_PATH: 'a\u0000b' }, 'MISSION_CONTROL_DB_PATH'],
    [{ AUTH_USER: 'admin' }, 'AUTH_PASS'],
    [{ AUTH_PASS: 'only-a-password' }, 'AUTH_USER'],
    [{ AUTH_USER: 'has space', AUTH_PASS: 'x' }, 'AUTH_USER'],
    [{ MC_COOKIE_SECURE: 'maybe' }, 'MC_COOKIE_SECURE'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ MAX_UPLOAD_BYTES: '0' }, 'MAX_UPLOAD_BYTES'],
    [{ MAX_UPLOAD_BYTES: '10GB' }, 'MAX_UPLOAD_BYTES'],
    [{ TRUSTED_PROXIES: 'proxy.example' }, 'TRUSTED_PROXIES'],
    [{ SHUTDOWN_TIMEOUT_MS: 'soon' }, 'SHUTDOWN_TIMEOUT_MS'],
  ])('should refuse %j with one line naming %s', (env, variable) => {
    let error: unknown;
    try {
      loadConfig(env);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(variable);
    expect((error as ConfigError).message).toContain(variable);
    expect((error as ConfigError).message).not.toContain('\n');
  });
});
