import { SchedulerRegistry } from '@nestjs/schedule';
import request from 'supertest';
import { auditEvents, corruptMiddle, folderEntries, inBackups, makeBackup } from './helpers/recovery-fixtures';
import { API_KEY, startTestApp, type TestApp } from './helpers/test-app';

interface TaskView {
  id: string;
  enabled: boolean;
  lastRun: number | null;
  nextRun: number | null;
  running: boolean;
  lastResult: { ok: boolean; message: string; timestamp: number } | null;
}

describe('Recovery: restore drill (e2e)', () => {
  let t: TestApp;

  beforeEach(async () => {
    t = await startTestApp();
  });

  afterEach(async () => {
    await t?.close();
  });

  async function drillTask(): Promise<TaskView> {
    const response = await request(t.http).get('/api/scheduler').set('x-api-key', API_KEY).expect(200);
    const tasks = response.body.tasks as TaskView[];
    expect(tasks.map((task) => task.id)).toEqual(['auto_backup', 'restore_drill']);
    return tasks[1];
  }

  const trigger = () =>
    request(t.http).post('/api/scheduler').set('x-api-key', API_KEY).send({ task_id: 'restore_drill' });

  it('should be scheduled Sundays 04:00 UTC, on by default, never run yet', async () => {
    const job = t.app.get(SchedulerRegistry).getCronJob('restore_drill');
    expect(job.cronTime.source).toBe('0 4 * * 0');
    const task = await drillTask();
    expect(task).toMatchObject({ enabled: true, lastRun: null, running: false, lastResult: null });
    const next = new Date(task.nextRun!);
    expect([next.getUTCDay(), next.getUTCHours(), next.getUTCMinutes()]).toEqual([0, 4, 0]);
  });

  it('should pass on a good backup, record it in the task state and the audit log, and leave no scratch file', async () => {
    const made = await makeBackup(t);
    const response = await trigger().expect(200);
    expect(response.body).toEqual({ ok: true, message: expect.stringContaining(made.name) });
    const task = await drillTask();
    expect(task.lastResult).toMatchObject({ ok: true, message: response.body.message });
    expect(task.running).toBe(false);
    expect(task.lastRun).toEqual(expect.any(Number));
    const audits = await auditEvents(t, 'restore_drill');
    expect(audits).toHaveLength(1);
    expect(audits[0]).toMatchObject({ actor: 'api-key', detail: { ok: true, name: made.name, source: 'trigger' } });
    expect(folderEntries(t)).toEqual([made.name]);
  });

  it('should report failure on a corrupted newest backup (state, audit, error) and leave no scratch file', async () => {
    await makeBackup(t);
    const newest = await makeBackup(t);
    corruptMiddle(inBackups(t, newest.name));
    const response = await trigger().expect(500);
    expect(response.body).toMatchObject({ ok: false, message: expect.stringContaining(newest.name) });
    const task = await drillTask();
    expect(task.lastResult).toMatchObject({ ok: false });
    const audits = await auditEvents(t, 'restore_drill');
    expect(audits[0]).toMatchObject({ detail: { ok: false, name: newest.name } });
    expect(folderEntries(t).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('should fail with a clear message when there is no backup at all', async () => {
    const response = await trigger().expect(500);
    expect(response.body.message).toMatch(/no backup/);
    expect((await drillTask()).lastResult).toMatchObject({ ok: false, message: response.body.message });
  });

  it('should run from the cron when general.restore_drill is on, and not when it is off', async () => {
    await makeBackup(t);
    const job = t.app.get(SchedulerRegistry).getCronJob('restore_drill');
    await request(t.http)
      .put('/api/settings')
      .set('x-api-key', API_KEY)
      .send({ settings: { 'general.restore_drill': false } })
      .expect(200);
    await job.fireOnTick();
    expect((await drillTask()).lastRun).toBeNull();
    await request(t.http)
      .put('/api/settings')
      .set('x-api-key', API_KEY)
      .send({ settings: { 'general.restore_drill': true } })
      .expect(200);
    // The job waits for its handler (waitForCompletion), so the drill is over when this resolves.
    await job.fireOnTick();
    const task = await drillTask();
    expect(task.lastResult).toMatchObject({ ok: true });
    const audits = await auditEvents(t, 'restore_drill');
    expect(audits[0]).toMatchObject({ actor: 'scheduler', detail: { source: 'cron', ok: true } });
  });
});
