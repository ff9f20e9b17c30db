import request from 'supertest';
import { API_KEY, startTestApp, TestApp } from './helpers/test-app';

type Setting = { key: string; value: string; is_default: boolean; updated_by: string | null };

describe('Settings and audit (e2e)', () => {
  let t: TestApp;
  /** One app for every test of a block whose tests each prove that a refused request stored nothing. */
  let shared: TestApp | undefined;

  beforeEach(async () => {
    t = shared ?? (await startTestApp());
  });

  afterEach(async () => {
    if (t !== shared) {
      await t.close();
    }
  });

  const get = (path: string) => request(t.http).get(path).set('x-api-key', API_KEY);
  const put = (body: unknown) =>
    request(t.http)
      .put('/api/settings')
      .set('x-api-key', API_KEY)
      .send(body as object);
  const settingsMap = async () =>
    Object.fromEntries(((await get('/api/settings').expect(200)).body.settings as Setting[]).map((s) => [s.key, s]));

  describe('settings', () => {
    it('should list the defaults with descriptions and categories', async () => {
      const settings = await settingsMap();
      expect(settings['general.auto_backup']).toMatchObject({ value: 'false', is_default: true, updated_by: null });
      expect(settings['general.backup_retention_count']).toMatchObject({ value: '10', is_default: true });
      for (const setting of Object.values(settings)) {
        expect(setting).toEqual(
          expect.objectContaining({
            description: expect.any(String),
            category: expect.any(String),
            updated_at: null,
          }),
        );
      }
    });

    it('should store a valid update, report it, and audit old and new values', async () => {
      await put({ settings: { 'general.backup_retention_count': 5, 'general.auto_backup': true } }).expect(200, {
        updated: ['general.backup_retention_count', 'general.auto_backup'],
        count: 2,
      });
      const settings = await settingsMap();
      expect(settings['general.backup_retention_count']).toMatchObject({
        value: '5',
        is_default: false,
        updated_by: 'api-key',
      });
      expect(settings['general.auto_backup'].value).toBe('true');
      const audit = (await get('/api/audit?action=settings_update').expect(200)).body.events;
      expect(audit).toHaveLength(1);
      expect(audit[0].detail.changes['general.backup_retention_count']).toEqual({ old: '10', new: '5' });
    });

    describe('refused', () => {
      // Each case checks that nothing was stored or audited, so they can share an app: one that stored something
      // fails there.
      beforeAll(async () => {
        shared = await startTestApp();
      });

      afterAll(async () => {
        await shared?.close();
        shared = undefined;
      });

      it.each([
        [{ settings: { 'general.backup_retention_count': 0 } }],
        [{ settings: { 'general.backup_retention_count': 1001 } }],
        [{ settings: { 'general.backup_retention_count': 2.5 } }],
        [{ settings: { 'general.backup_retention_count': 'ten' } }],
        [{ settings: { 'general.backup_retention_count': null } }],
        [{ settings: { 'general.auto_backup': 'yes' } }],
        [{ settings: { 'general.auto_backup': 1 } }],
        [{ settings: { 'general.backup_cron': 'every day' } }],
        [{ settings: { 'general.alert_webhook_url': 'file:///etc/passwd' } }],
        [{ settings: { 'unknown.key': '1' } }],
        [{ settings: { 'general.auto_backup': true, 'general.backup_retention_count': -3 } }],
        [{ settings: {} }],
        [{ settings: [] }],
        [{ settings: 'general.auto_backup=true' }],
        [{}],
        [{ settings: { 'general.auto_backup': true }, extra: 1 }],
      ])('should refuse %j with 400 and store nothing', async (body) => {
        const response = await put(body).expect(400);
        expect(typeof response.body.error).toBe('string');
        expect(await t.dataSource.query('SELECT * FROM settings')).toEqual([]);
        const settings = await settingsMap();
        expect(settings['general.auto_backup'].value).toBe('false');
        expect(settings['general.backup_retention_count'].value).toBe('10');
        expect((await get('/api/audit?action=settings_update').expect(200)).body.total).toBe(0);
      });
      it('should name the cron field that is out of range and its range, and store nothing', async () => {
        const response = await put({ settings: { 'general.backup_cron': '61 25 * * *' } }).expect(400);
        expect(response.body).toEqual({
          error: 'Invalid settings',
          details: ['general.backup_cron: minute must be 0-59 (got 61); hour must be 0-23 (got 25)'],
        });
        expect(await t.dataSource.query('SELECT * FROM settings')).toEqual([]);
      });
    });
  });

  describe('audit', () => {
    beforeEach(async () => {
      for (let i = 0; i < 7; i++) {
        await put({ settings: { 'general.backup_retention_count': i + 1 } }).expect(200);
      }
      await request(t.http).post('/api/auth/login').send({ username: 'admin', password: 'wrong' }).expect(401);
    });

    it('should list newest first with total, limit and offset', async () => {
      const all = (await get('/api/audit').expect(200)).body;
      expect(all.limit).toBe(100);
      expect(all.offset).toBe(0);
      expect(all.total).toBe(all.events.length);
      const ids = all.events.map((e: { id: number }) => e.id);
      expect(ids).toEqual([...ids].sort((a: number, b: number) => b - a));
      expect(all.events[0]).toEqual(
        expect.objectContaining({
          action: 'login_failed',
          actor: 'admin',
          detail: expect.any(Object),
          ip_address: expect.any(String),
          created_at: expect.any(Number),
        }),
      );
    });

    it('should filter by action and actor and page with limit and offset', async () => {
      const page1 = (await get('/api/audit?action=settings_update&limit=3').expect(200)).body;
      const page3 = (await get('/api/audit?action=settings_update&limit=3&offset=6').expect(200)).body;
      expect(page1.total).toBe(7);
      expect(page1.events).toHaveLength(3);
      expect(page3.events).toHaveLength(1);
      expect(page3.events[0].detail.changes['general.backup_retention_count'].new).toBe('1');
      const byActor = (await get('/api/audit?actor=api-key').expect(200)).body;
      expect(byActor.total).toBe(7);
      expect((await get('/api/audit?actor=nobody').expect(200)).body.total).toBe(0);
    });

    it('should filter by time', async () => {
      const now = Math.floor(Date.now() / 1000);
      expect((await get(`/api/audit?since=${now + 3600}`).expect(200)).body.total).toBe(0);
      expect((await get(`/api/audit?until=${now - 3600}`).expect(200)).body.total).toBe(0);
      expect((await get(`/api/audit?since=${now - 3600}&until=${now + 3600}`).expect(200)).body.total).toBeGreaterThan(
        7,
      );
    });

    it.each(['limit=0', 'limit=1001', 'limit=abc', 'offset=-1', 'since=yesterday', 'since=20&until=10'])(
      'should refuse ?%s with 400',
      async (query) => {
        const response = await get(`/api/audit?${query}`).expect(400);
        expect(typeof response.body.error).toBe('string');
      },
    );
  });
});
