import request from 'supertest';
import { loadConfig } from '../src/config/app-config';
import { startupSummary } from '../src/lifecycle/startup-summary';
import { API_KEY, startTestApp, type TestApp } from './helpers/test-app';

/** The age README's example recipient: a well-formed X25519 public key nobody here holds the identity of. */
const RECIPIENT = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';

describe('What a newcomer meets first (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp();
  });

  afterAll(async () => {
    await t.close();
  });

  it('should answer GET / with a JSON pointer to the documentation, without credentials', async () => {
    const response = await request(t.http).get('/').expect(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.body).toEqual({
      name: 'Mission Control Backups',
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      docs: '/api/docs',
      openapi: '/api/docs-json',
      health: '/api/health',
    });
    await request(t.http)
      .get(response.body.docs as string)
      .expect(200);
    // Only the root: any other unknown path is still a JSON 404.
    expect((await request(t.http).get('/nothing-here').expect(404)).body).toEqual({ error: 'Not found' });
  });

  it('should draw no lock in Swagger on the routes anyone may call, and still show admins the health details', async () => {
    const doc = (await request(t.http).get('/api/docs-json').expect(200)).body as {
      paths: Record<string, Record<string, { security?: unknown[] }>>;
    };
    const open = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops)
        .filter(([, op]) => (op.security ?? []).length === 0)
        .map(([method]) => `${method} ${path}`),
    );
    expect(open.sort()).toEqual(['get /api/health', 'post /api/auth/login']);
    expect(doc.paths).not.toHaveProperty('/');
    const anonymous = (await request(t.http).get('/api/health').expect(200)).body as { checks: object };
    const admin = (await request(t.http).get('/api/health').set('x-api-key', API_KEY).expect(200)).body as {
      checks: object;
    };
    expect(JSON.stringify(admin.checks).length).toBeGreaterThan(JSON.stringify(anonymous.checks).length);
  });

  describe('the start-up summary', () => {
    const summary = async (env: Record<string, string>) =>
      startupSummary(t.app, loadConfig({ MISSION_CONTROL_DB_PATH: t.dbPath, ...env }));

    it('should say off-site copies and replication are off when no bucket is set', async () => {
      expect((await summary({})).at(-1)).toBe('Off-site copies: off (OFFSITE_S3_BUCKET not set); replication: off');
    });

    it('should say where off-site copies go and how they are encrypted', async () => {
      const lines = await summary({
        OFFSITE_S3_BUCKET: 'acme-mc-backups',
        OFFSITE_S3_ENDPOINT: 'https://s3.example.com',
        BACKUP_ENCRYPTION_RECIPIENTS: RECIPIENT,
      });
      expect(lines.at(-1)).toBe(
        'Off-site copies: on, bucket "acme-mc-backups" at https://s3.example.com, prefix "mission-control/", ' +
          'encrypted to 1 age recipient, BACKUP_ENCRYPTION_IDENTITY_FILE not set; replication: off',
      );
      const plain = await summary({ OFFSITE_S3_BUCKET: 'acme-mc-backups', OFFSITE_ALLOW_PLAINTEXT: 'true' });
      expect(plain.at(-1)).toBe(
        'Off-site copies: on, bucket "acme-mc-backups" at AWS S3, prefix "mission-control/", ' +
          'NOT encrypted (OFFSITE_ALLOW_PLAINTEXT), BACKUP_ENCRYPTION_IDENTITY_FILE not set; replication: off',
      );
    });
  });
});
