import Database from 'better-sqlite3';
import * as path from 'node:path';
import request from 'supertest';
import { ReplicationService } from '../src/replication/replication.service';
import { PointInTimeUnavailableError } from '../src/replication/replica-window';
import { replicaPerTest } from './helpers/replica-fixtures';
import { type TestApp, withApiKey } from './helpers/test-app';

interface StatusBody {
  status: string;
  generation: string | null;
  lag_ms: number;
  last_shipped_at: string | null;
  pending_bytes: number;
  restorable_from: string | null;
  restorable_to: string | null;
  error: string | null;
}

describe('Continuous replication (e2e: the real app, s3rver behind a fault proxy)', () => {
  const replica = replicaPerTest();
  const start = (extra: Record<string, string> = {}): Promise<TestApp> => replica.start(extra);

  async function status(app: TestApp): Promise<StatusBody> {
    return (await withApiKey(app.http, 'get', '/api/backup/replication').expect(200)).body as StatusBody;
  }

  async function setRetention(app: TestApp, count: number): Promise<void> {
    await withApiKey(app.http, 'put', '/api/settings')
      .send({ settings: { 'general.backup_retention_count': count } })
      .expect(200);
  }

  function settingIn(file: string): string | undefined {
    const db = new Database(file, { readonly: true });
    try {
      const row = db.prepare("SELECT value FROM settings WHERE key = 'general.backup_retention_count'").get() as
        { value: string } | undefined;
      return row?.value;
    } finally {
      db.close();
    }
  }

  it('should stream, report, snapshot on demand, audit each generation and rebuild the latest state', async () => {
    const app = await start();
    const replication = app.app.get(ReplicationService);
    await replication.settle();
    const first = await status(app);
    expect(first).toMatchObject({
      status: 'streaming',
      lag_ms: 0,
      pending_bytes: 0,
      error: null,
      compaction: { ranges_stored: 0, last_error: null },
    });
    expect(first.generation).toMatch(/^g\d{17}-[0-9a-f]{8}$/);
    expect(first.restorable_from).not.toBeNull();

    await setRetention(app, 7);
    await replication.syncNow();
    const rebuilt = await replication.rebuildAt('latest', { scratchDir: path.join(app.dir, 'scratch') });
    expect(settingIn(rebuilt.file)).toBe('7');
    expect(rebuilt.generation).toBe(first.generation);

    const snap = await withApiKey(app.http, 'post', '/api/backup/replication/snapshot').expect(200);
    const second = (snap.body as { generation: string }).generation;
    expect(second).toMatch(/^g\d{17}-/);
    expect(second).not.toBe(first.generation);
    await replication.syncNow();

    const audit = await withApiKey(app.http, 'get', '/api/audit?action=replication_generation').expect(200);
    const reasons = (audit.body as { events: { detail: { reason: string; generation: string } }[] }).events
      .map((e) => e.detail.reason)
      .reverse();
    expect(reasons).toEqual(['start', 'manual']);

    const health = await withApiKey(app.http, 'get', '/api/health').expect(200);
    expect((health.body as { checks: Record<string, { status: string }> }).checks.replication.status).toBe('up');
    const metrics = (await withApiKey(app.http, 'get', '/metrics').expect(200)).text;
    expect(metrics).toMatch(/^mc_replication_generations_total 2$/m);
    expect(metrics).toMatch(/^mc_replication_pending_bytes 0$/m);
    expect(metrics).toMatch(/^mc_replication_lag_seconds 0$/m);
    expect(metrics).toMatch(/^mc_replication_failures_total 0$/m);

    // A moment before anything was stored is refused with what is restorable.
    await expect(
      replication.rebuildAt(new Date(Date.parse(first.restorable_from!) - 60_000), {
        scratchDir: path.join(app.dir, 'scratch'),
      }),
    ).rejects.toThrow(PointInTimeUnavailableError);
    await expect(
      replication.rebuildAt(new Date(Date.now() + 3_600_000), { scratchDir: path.join(app.dir, 'scratch') }),
    ).rejects.toThrow(/is in the future: restorable from/);
  });

  it('should spool while the bucket is away, report it, and ship everything when it returns', async () => {
    const app = await start();
    const replication = app.app.get(ReplicationService);
    await replication.settle();
    replica.proxy.mode = 'http503';
    await setRetention(app, 9);
    await replication.syncNow();
    const away = await status(app);
    expect(away.status).toBe('failed');
    expect(away.pending_bytes).toBeGreaterThan(0);
    expect(away.error).toMatch(/Upload failed/);
    const health = await withApiKey(app.http, 'get', '/api/health').expect(200);
    expect((health.body as { status: string }).status).toBe('degraded');

    replica.proxy.mode = 'pass';
    await replication.syncNow();
    const back = await status(app);
    expect(back).toMatchObject({ status: 'streaming', pending_bytes: 0, lag_ms: 0 });
    const rebuilt = await replication.rebuildAt('latest', { scratchDir: path.join(app.dir, 'scratch') });
    expect(settingIn(rebuilt.file)).toBe('9');
  });

  it('should answer off, and refuse a snapshot with 400, when REPLICATION=off; admin only', async () => {
    const app = await start({ REPLICATION: 'off' });
    expect(await status(app)).toMatchObject({ status: 'off', generation: null, pending_bytes: 0 });
    const refused = await withApiKey(app.http, 'post', '/api/backup/replication/snapshot').expect(400);
    expect(refused.body).toEqual({ error: expect.stringContaining('replication is off') as unknown });
    await request(app.http).get('/api/backup/replication').expect(401);
    await request(app.http).post('/api/backup/replication/snapshot').expect(401);
  });
});
