import { SchedulerRegistry } from '@nestjs/schedule';
import { readdirSync } from 'node:fs';
import request from 'supertest';
import { Clock } from '../src/common/clock';
import { nextRunAfter } from '../src/scheduler/schedule-timing';
import { SchedulerService } from '../src/scheduler/scheduler.service';
import { API_KEY, loginCookie, startTestApp, TestApp } from './helpers/test-app';

const DAY = 24 * 60 * 60 * 1000;

function backupFiles(t: TestApp): string[] {
  return readdirSync(t.backupsDir).filter((name) => name.startsWith('mc-backup-') && name.endsWith('.db'));
}

async function task(t: TestApp) {
  const response = await request(t.http).get('/api/scheduler').set('x-api-key', API_KEY).expect(200);
  return (response.body.tasks as Array<{ id: string }>).find((x) => x.id === 'auto_backup') as unknown as {
    id: string;
    name: string;
    enabled: boolean;
    lastRun: number | null;
    nextRun: number;
    running: boolean;
    lastResult: { ok: boolean; message: string; timestamp: number } | null;
  };
}

async function audit(t: TestApp, action: string) {
  const response = await request(t.http).get(`/api/audit?action=${action}`).set('x-api-key', API_KEY).expect(200);
  return response.body.events as Array<{ actor: string; detail: Record<string, unknown> }>;
}

async function enableAutoBackup(t: TestApp, enabled = true) {
  await request(t.http)
    .put('/api/settings')
    .set('x-api-key', API_KEY)
    .send({ settings: { 'general.auto_backup': enabled } })
    .expect(200);
}

async function until(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error('condition not met in time');
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('Scheduler (e2e)', () => {
  let t: TestApp;

  beforeEach(async () => {
    t = await startTestApp();
  });

  afterEach(async () => {
    jest.useRealTimers();
    await t?.close();
  });

  it('should register the auto_backup cron at 03:00 UTC and report it, off by default', async () => {
    const job = t.app.get(SchedulerRegistry).getCronJob('auto_backup');
    expect(job.cronTime.source).toBe('0 3 * * *');
    expect(job.cronTime.timeZone).toBe('UTC');
    const state = await task(t);
    expect(state).toMatchObject({ id: 'auto_backup', enabled: false, lastRun: null, running: false, lastResult: null });
    expect(typeof state.name).toBe('string');
    expect(state.nextRun).toBe(nextRunAfter('0 3 * * *', new Date()));
    expect(new Date(state.nextRun).toISOString()).toMatch(/T03:00:00\.000Z$/);
  });

  it('should make no backup when the cron fires with auto-backup off', async () => {
    const job = t.app.get(SchedulerRegistry).getCronJob('auto_backup');
    // fireOnTick resolves when the handler is done (waitForCompletion), so the checks below see its outcome.
    expect(job.waitForCompletion).toBe(true);
    await job.fireOnTick();
    expect(backupFiles(t)).toEqual([]);
    expect((await task(t)).lastRun).toBeNull();
    // The same tick with auto-backup on does make one, proving the tick above ran the real handler.
    await enableAutoBackup(t);
    await job.fireOnTick();
    expect(backupFiles(t)).toHaveLength(1);
  });

  it('should make the backup at 03:00 UTC when the clock reaches it (fake clock), audited as the scheduler', async () => {
    await enableAutoBackup(t);
    const job = t.app.get(SchedulerRegistry).getCronJob('auto_backup');
    await job.stop();
    // Two clocks move together: jest's fake timers drive the cron library, the injected Clock names the file.
    let fakeNow = Date.parse('2026-12-01T02:59:58.000Z');
    jest.spyOn(t.app.get(Clock), 'now').mockImplementation(() => new Date(fakeNow));
    jest.useFakeTimers({
      now: fakeNow,
      doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask', 'hrtime', 'performance'],
    });
    job.start();
    fakeNow += 1_000;
    jest.advanceTimersByTime(1_000);
    expect(backupFiles(t)).toEqual([]);
    fakeNow += 1_500;
    jest.advanceTimersByTime(1_500);
    jest.useRealTimers();
    await until(() => backupFiles(t).length === 1);
    expect(backupFiles(t)).toEqual(['mc-backup-2026-12-01_03-00-00.db']);
    let runs: Awaited<ReturnType<typeof audit>> = [];
    for (let i = 0; i < 200 && runs.length === 0; i++) {
      runs = await audit(t, 'auto_backup');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ actor: 'scheduler', detail: { source: 'cron', ok: true } });
    const created = await audit(t, 'backup_create');
    expect(created[0]).toMatchObject({ actor: 'scheduler', detail: { kind: 'scheduled' } });
    const state = await task(t);
    expect(state.lastRun).toBe(Date.parse('2026-12-01T03:00:00.500Z'));
    expect(state.lastResult).toMatchObject({ ok: true });
    expect(state.running).toBe(false);
  });

  it('should run the task on POST as the admin, audited like POST /api/backup', async () => {
    const cookie = await loginCookie(t.http);
    const response = await request(t.http)
      .post('/api/scheduler')
      .set('Cookie', cookie)
      .send({ task_id: 'auto_backup' })
      .expect(200);
    expect(response.body).toEqual({ ok: true, message: expect.stringContaining('mc-backup-') });
    expect(backupFiles(t)).toHaveLength(1);
    const created = await audit(t, 'backup_create');
    expect(created).toHaveLength(1);
    expect(created[0]).toMatchObject({ actor: 'admin', detail: { trigger: 'trigger' } });
    const state = await task(t);
    expect(state.lastResult).toMatchObject({ ok: true, message: response.body.message });
    expect(state.lastRun).toEqual(expect.any(Number));
  });

  it.each([[{}], [{ task_id: 'nope' }], [{ task_id: 7 }], [{ task_id: 'auto_backup', extra: 1 }]])(
    'should refuse %j with 400 and make no backup',
    async (body) => {
      const response = await request(t.http).post('/api/scheduler').set('x-api-key', API_KEY).send(body).expect(400);
      expect(typeof response.body.error).toBe('string');
      expect(backupFiles(t)).toEqual([]);
    },
  );

  it('should make one backup each, in turn, when a trigger and the cron fire together', async () => {
    await enableAutoBackup(t);
    const job = t.app.get(SchedulerRegistry).getCronJob('auto_backup');
    const [, triggered] = await Promise.all([
      job.fireOnTick(),
      request(t.http).post('/api/scheduler').set('x-api-key', API_KEY).send({ task_id: 'auto_backup' }),
    ]);
    expect(triggered.status).toBe(200);
    await until(() => backupFiles(t).length === 2);
    expect(new Set(backupFiles(t)).size).toBe(2);
    expect((await task(t)).running).toBe(false);
  });

  it('should keep lastRun and lastResult across a restart', async () => {
    await request(t.http).post('/api/scheduler').set('x-api-key', API_KEY).send({ task_id: 'auto_backup' }).expect(200);
    const before = await task(t);
    const dir = t.dir;
    await t.close({ keepFiles: true });
    t = await startTestApp({}, dir);
    const after = await task(t);
    expect(after.lastRun).toBe(before.lastRun);
    expect(after.lastResult).toEqual(before.lastResult);
    expect(after.running).toBe(false);
  });

  it('should catch up once at start-up when auto-backup is on and the last success is over a day old', async () => {
    await enableAutoBackup(t);
    await request(t.http).post('/api/scheduler').set('x-api-key', API_KEY).send({ task_id: 'auto_backup' }).expect(200);
    await t.dataSource.query("UPDATE scheduler_tasks SET last_success_at = ? WHERE id = 'auto_backup'", [
      Date.now() - 2 * DAY,
    ]);
    const dir = t.dir;
    await t.close({ keepFiles: true });
    t = await startTestApp({}, dir);
    await t.app.get(SchedulerService).startupCatchUp;
    expect(backupFiles(t)).toHaveLength(2);
    const runs = await audit(t, 'auto_backup');
    expect(runs).toHaveLength(1);
    expect(runs[0].detail).toMatchObject({ source: 'catch_up', ok: true });

    // A recent success: the next start does not catch up again.
    await t.close({ keepFiles: true });
    t = await startTestApp({}, dir);
    await t.app.get(SchedulerService).startupCatchUp;
    expect(backupFiles(t)).toHaveLength(2);
  });

  it('should not catch up when auto-backup is off, and clear a stale running flag', async () => {
    await t.dataSource.query(
      "INSERT INTO scheduler_tasks (id, last_run, last_success_at, running) VALUES ('auto_backup', 1, 1, 1)",
    );
    const dir = t.dir;
    await t.close({ keepFiles: true });
    t = await startTestApp({}, dir);
    await t.app.get(SchedulerService).startupCatchUp;
    expect(backupFiles(t)).toEqual([]);
    const state = await task(t);
    expect(state.running).toBe(false);
    expect(state.lastResult).toMatchObject({ ok: false, message: 'Interrupted by a restart' });
  });
});

describe('Scheduler: configurable schedule (e2e)', () => {
  let t: TestApp;

  beforeEach(async () => {
    t = await startTestApp();
  });

  afterEach(async () => {
    await t.close();
  });

  it('should re-time the job at once when general.backup_cron changes, and keep it across a restart', async () => {
    await request(t.http)
      .put('/api/settings')
      .set('x-api-key', API_KEY)
      .send({ settings: { 'general.backup_cron': '30 1 * * 0' } })
      .expect(200);
    const job = t.app.get(SchedulerRegistry).getCronJob('auto_backup');
    expect(job.cronTime.source).toBe('30 1 * * 0');
    const expected = nextRunAfter('30 1 * * 0', new Date());
    expect((await task(t)).nextRun).toBe(expected);
    expect(new Date(expected).getUTCDay()).toBe(0);

    const dir = t.dir;
    await t.close({ keepFiles: true });
    t = await startTestApp({}, dir);
    expect((await task(t)).nextRun).toBe(nextRunAfter('30 1 * * 0', new Date()));
  });

  it('should refuse an invalid cron expression and keep the old schedule', async () => {
    await request(t.http)
      .put('/api/settings')
      .set('x-api-key', API_KEY)
      .send({ settings: { 'general.backup_cron': '61 25 * * *' } })
      .expect(400);
    expect(t.app.get(SchedulerRegistry).getCronJob('auto_backup').cronTime.source).toBe('0 3 * * *');
  });
});
