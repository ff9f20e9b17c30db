import request from 'supertest';
import { ServiceState } from '../src/common/availability';
import { SQLITE_HANDLE, SqliteHandle } from '../src/database/sqlite-handle';
import { API_KEY } from './helpers/test-app';
import { ObservabilityApp, setSetting, startObservabilityApp } from './helpers/observability-app';

const HOUR = 60 * 60 * 1000;

interface HealthBody {
  status: string;
  checks: Record<string, { status: string; message?: string } & Record<string, unknown>>;
}

describe('Health (e2e)', () => {
  let t: ObservabilityApp | undefined;
  let freeBytes: number | 'fail';

  beforeEach(async () => {
    freeBytes = 10 * 1024 ** 3;
    t = await startObservabilityApp(
      {},
      {
        freeDiskBytes: async () => {
          if (freeBytes === 'fail') {
            throw new Error('statfs failed');
          }
          return freeBytes;
        },
      },
    );
  });

  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  /** As an admin (the details); anonymous callers get the statuses only, checked against it each time. */
  async function health(expected: number): Promise<HealthBody> {
    const response = await request(t!.http).get('/api/health').set('x-api-key', API_KEY).expect(expected);
    expect(JSON.stringify(response.body)).not.toContain(t!.dir);
    const anonymous = await request(t!.http).get('/api/health').expect(expected);
    const body = response.body as HealthBody;
    const statuses = Object.fromEntries(
      Object.entries(body.checks).map(([name, check]) => [name, name === 'service' ? check : { status: check.status }]),
    );
    expect(anonymous.body).toEqual({ status: body.status, checks: statuses });
    return body;
  }

  async function setLastAutoSuccess(ms: number): Promise<void> {
    await t!.dataSource.query(
      "INSERT INTO scheduler_tasks (id, last_success_at, running) VALUES ('auto_backup', ?, 0) " +
        'ON CONFLICT(id) DO UPDATE SET last_success_at = excluded.last_success_at',
      [ms],
    );
  }

  it('should answer ok without authentication, with database, disk and last_backup checks', async () => {
    const body = await health(200);
    expect(body.status).toBe('ok');
    expect(body.checks.database).toMatchObject({ status: 'up', schema_version: expect.any(Number) });
    expect(body.checks.disk).toMatchObject({ status: 'up', free_bytes: freeBytes, required_bytes: 0 });
    expect(body.checks.last_backup).toMatchObject({ status: 'up', auto_backup: false, last_success_at: null });
  });

  it('should be degraded when auto-backup is on and the last success is over 26 hours old', async () => {
    await setSetting(t!.http, 'general.auto_backup', true);
    let body = await health(200);
    expect(body.status).toBe('degraded');
    expect(body.checks.last_backup).toMatchObject({ status: 'degraded', auto_backup: true, last_success_at: null });

    await setLastAutoSuccess(Date.now() - 27 * HOUR);
    body = await health(200);
    expect(body.status).toBe('degraded');
    expect(body.checks.last_backup.status).toBe('degraded');
    expect(body.checks.last_backup.message).toMatch(/26 hours/);
    expect(body.checks.last_backup.age_seconds).toBeGreaterThan(26 * 3600);
    expect(body.checks.database.status).toBe('up');

    await setLastAutoSuccess(Date.now() - 25 * HOUR);
    body = await health(200);
    expect(body.status).toBe('ok');

    // The same old success with auto-backup off is nobody's concern.
    await setLastAutoSuccess(Date.now() - 27 * HOUR);
    await setSetting(t!.http, 'general.auto_backup', false);
    expect((await health(200)).status).toBe('ok');
  });

  it('should count a manual backup file as the last success', async () => {
    await setSetting(t!.http, 'general.auto_backup', true);
    await setLastAutoSuccess(Date.now() - 27 * HOUR);
    await request(t!.http).post('/api/backup').set('x-api-key', API_KEY).expect(200);
    const body = await health(200);
    expect(body.status).toBe('ok');
    expect(body.checks.last_backup.age_seconds).toBeLessThan(60);
  });

  it('should be degraded when free disk space is under twice the last backup', async () => {
    const created = await request(t!.http).post('/api/backup').set('x-api-key', API_KEY).expect(200);
    const size = (created.body as { backup: { size: number } }).backup.size;

    freeBytes = 2 * size;
    expect((await health(200)).status).toBe('ok');

    freeBytes = 2 * size - 1;
    const body = await health(200);
    expect(body.status).toBe('degraded');
    expect(body.checks.disk).toMatchObject({
      status: 'degraded',
      free_bytes: 2 * size - 1,
      required_bytes: 2 * size,
      last_backup_size_bytes: size,
    });
    expect(body.checks.last_backup.status).toBe('up');

    freeBytes = 'fail';
    expect((await health(200)).checks.disk.status).toBe('degraded');
  });

  it('should answer 503 error when the database does not answer', async () => {
    const handle = t!.app.get<SqliteHandle>(SQLITE_HANDLE);
    const prepare = jest.spyOn(handle, 'prepare').mockImplementation(() => {
      throw new Error('SQLITE_IOERR: disk I/O error');
    });
    try {
      const body = await health(503);
      expect(body.status).toBe('error');
      expect(body.checks.database).toMatchObject({ status: 'down', message: 'The database does not answer' });
    } finally {
      prepare.mockRestore();
    }
    expect((await health(200)).status).toBe('ok');
  });

  it('should answer 503 error once the database handle is closed', async () => {
    t!.app.get<SqliteHandle>(SQLITE_HANDLE).close();
    const body = await health(503);
    expect(body.status).toBe('error');
    expect(body.checks.database.status).toBe('down');
  });

  it('should answer 503 while shutting down, so a load balancer drains', async () => {
    t!.app.get(ServiceState).beginShutdown();
    const body = await health(503);
    expect(body.status).toBe('error');
    expect(body.checks.service).toEqual({ status: 'down', message: 'The service is shutting down' });
  });
});
