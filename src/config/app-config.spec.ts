import * as fs from 'node:fs';
import * as os from 'node:os';
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

  describe('off-site', () => {
    // A throwaway X25519 key pair made for this test, and the recipient with its last character changed (the bech32 checksum no longer holds).
    const RECIPIENT = 'age1jp8e48typy3fqpkj2gkv4n7crm3hjch4w7zet0yd6y4566hx096s5h9hnt';
    const BAD_CHECKSUM = 'age1jp8e48typy3fqpkj2gkv4n7crm3hjch4w7zet0yd6y4566hx096s5h9hnq';
    let dir: string;
    let identityFile: string;

    beforeAll(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mc-config-'));
      identityFile = path.join(dir, 'key.txt');
      fs.writeFileSync(
        identityFile,
        '# public key: ' + RECIPIENT + '\nAGE-SECRET-KEY-1THFC6FKC8AHCNM2VQS2LDC9LG6E5MLDRFEXA6R89V36FX5ZQNM5QEUURRX\n',
      );
      fs.writeFileSync(path.join(dir, 'not-a-key.txt'), 'hello\n');
    });

    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('should turn replication on with off-site unless REPLICATION=off, every 1000 ms by default', () => {
      const on = loadConfig({ OFFSITE_S3_BUCKET: 'b1b', BACKUP_ENCRYPTION_RECIPIENTS: RECIPIENT });
      expect([on.replication, on.replicationSyncIntervalMs]).toEqual([true, 1000]);
      const off = loadConfig({ OFFSITE_S3_BUCKET: 'b1b', BACKUP_ENCRYPTION_RECIPIENTS: RECIPIENT, REPLICATION: 'off' });
      expect(off.replication).toBe(false);
      expect(loadConfig({}).replication).toBe(false);
      expect(loadConfig({ REPLICATION_SYNC_INTERVAL_MS: '100' }).replicationSyncIntervalMs).toBe(100);
    });

    it('should be off without OFFSITE_S3_BUCKET', () => {
      expect(loadConfig({}).offsite).toBeUndefined();
    });

    it('should read the off-site variables with the contract defaults', () => {
      expect(loadConfig({ OFFSITE_S3_BUCKET: 'b1b', BACKUP_ENCRYPTION_RECIPIENTS: RECIPIENT }).offsite).toEqual({
        bucket: 'b1b',
        endpoint: undefined,
        region: 'us-east-1',
        prefix: 'mission-control/',
        forcePathStyle: false,
        recipients: [RECIPIENT],
        identityFile: undefined,
        allowPlaintext: false,
      });
      const custom = loadConfig({
        OFFSITE_S3_BUCKET: 'backups',
        OFFSITE_S3_ENDPOINT: 'https://minio.example:9000',
        OFFSITE_S3_REGION: 'auto',
        OFFSITE_S3_PREFIX: 'mc/prod/',
        BACKUP_ENCRYPTION_RECIPIENTS: ` ${RECIPIENT} , ${RECIPIENT}`,
        BACKUP_ENCRYPTION_IDENTITY_FILE: identityFile,
      }).offsite;
      expect(custom).toMatchObject({ forcePathStyle: true, region: 'auto', prefix: 'mc/prod/', identityFile });
      expect(custom?.recipients).toHaveLength(2);
      expect(loadConfig({ OFFSITE_S3_BUCKET: 'bbb', OFFSITE_ALLOW_PLAINTEXT: 'true' }).offsite?.recipients).toEqual([]);
    });

    it.each([
      [{ OFFSITE_S3_BUCKET: 'bucket' }, 'BACKUP_ENCRYPTION_RECIPIENTS'],
      [{ OFFSITE_S3_BUCKET: 'bucket', BACKUP_ENCRYPTION_RECIPIENTS: 'age1notakey' }, 'BACKUP_ENCRYPTION_RECIPIENTS'],
      [{ OFFSITE_S3_BUCKET: 'bucket', BACKUP_ENCRYPTION_RECIPIENTS: BAD_CHECKSUM }, 'BACKUP_ENCRYPTION_RECIPIENTS'],
      [{ BACKUP_ENCRYPTION_RECIPIENTS: `${RECIPIENT},ssh-ed25519 AAAA` }, 'BACKUP_ENCRYPTION_RECIPIENTS'],
      [{ BACKUP_ENCRYPTION_RECIPIENTS: 'AGE-SECRET-KEY-1ABC' }, 'BACKUP_ENCRYPTION_RECIPIENTS'],
      [{ OFFSITE_S3_BUCKET: 'b', BACKUP_ENCRYPTION_RECIPIENTS: RECIPIENT }, 'OFFSITE_S3_BUCKET'],
      [{ OFFSITE_S3_BUCKET: 'bucket', OFFSITE_S3_ENDPOINT: 'minio:9000' }, 'OFFSITE_S3_ENDPOINT'],
      [{ OFFSITE_S3_ENDPOINT: 'https://key:secret@host' }, 'OFFSITE_S3_ENDPOINT'],
      [{ OFFSITE_S3_REGION: 'us east' }, 'OFFSITE_S3_REGION'],
      [{ OFFSITE_S3_PREFIX: '/abs/' }, 'OFFSITE_S3_PREFIX'],
      [{ OFFSITE_S3_PREFIX: 'a/../b/' }, 'OFFSITE_S3_PREFIX'],
      [{ OFFSITE_S3_FORCE_PATH_STYLE: 'sometimes' }, 'OFFSITE_S3_FORCE_PATH_STYLE'],
      [{ OFFSITE_ALLOW_PLAINTEXT: 'maybe' }, 'OFFSITE_ALLOW_PLAINTEXT'],
      [{ BACKUP_ENCRYPTION_IDENTITY_FILE: '/nonexistent/key.txt' }, 'BACKUP_ENCRYPTION_IDENTITY_FILE'],
      [{ OFFSITE_REQUEST_TIMEOUT_MS: '5' }, 'OFFSITE_REQUEST_TIMEOUT_MS'],
      [{ REPLICATION: 'sometimes' }, 'REPLICATION'],
      [{ REPLICATION: 'on' }, 'REPLICATION'],
      [{ REPLICATION_SYNC_INTERVAL_MS: '99' }, 'REPLICATION_SYNC_INTERVAL_MS'],
      [{ REPLICATION_SYNC_INTERVAL_MS: '60001' }, 'REPLICATION_SYNC_INTERVAL_MS'],
    ])('should refuse %j with one line naming %s', (env, variable) => {
      let error: unknown;
      try {
        loadConfig(env);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).variable).toBe(variable);
      expect((error as ConfigError).message).not.toContain('\n');
    });

    it('should refuse an identity file that holds no identity, without quoting it', () => {
      expect(() => loadConfig({ BACKUP_ENCRYPTION_IDENTITY_FILE: path.join(dir, 'not-a-key.txt') })).toThrow(
        /BACKUP_ENCRYPTION_IDENTITY_FILE holds no AGE-SECRET-KEY-1/,
      );
    });
  });
});
