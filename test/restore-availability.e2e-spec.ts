import Database from 'better-sqlite3';
import request from 'supertest';
import { FaultPoints } from '../src/config/fault-points';
import type { RestorePausePoint } from '../src/config/app-config';
import { AuditService } from '../src/audit/audit.service';
import { makeBackup } from './helpers/recovery-fixtures';
import { ADMIN, API_KEY, loginCookie } from './helpers/test-app';
import { appPerTest, heldCall } from './helpers/held-call';

/**
 * While a restore's worker holds the live database's write lock (the safety copy and the page copy), the rest of
 * the service keeps answering: reads are served, audit rows wait in memory and land when the restore ends, other
 * writes wait asynchronously, and new logins get 503 with Retry-After. None of it may wait for the lock on the
 * event loop: such a wait lasts the busy timeout and then fails (the audit row is lost).
 */
describe('The service during a restore (e2e)', () => {
  const app = appPerTest();

  /**
   * Starts a restore of `name` that stops at `point` (the same points as MC_TEST_PAUSE_AT, where the kill tests stop
   * for good) until `release` is called.
   */
  async function heldRestore(name: string, point: RestorePausePoint) {
    const faults = app.t.app.get(FaultPoints);
    const held = heldCall();
    jest.spyOn(faults, 'reach').mockImplementation(async (at) => {
      if (at === point) {
        await held.hold();
      }
    });
    const restore = request(app.t.http)
      .post('/api/backup/restore')
      .set('x-api-key', API_KEY)
      .send({ name })
      .then((response) => response);
    await held.reached;
    return { release: held.release, restore };
  }

  /** Whether another connection could take the write lock right now (no waiting). */
  function writeLockFree(): boolean {
    const other = new Database(app.t.dbPath, { timeout: 0 });
    try {
      other.exec('BEGIN IMMEDIATE; ROLLBACK');
      return true;
    } catch (error) {
      expect((error as { code?: string }).code).toBe('SQLITE_BUSY');
      return false;
    } finally {
      other.close();
    }
  }

  async function auditRows(action: string): Promise<Array<{ actor: string; created_at: number }>> {
    return app.t.dataSource.query('SELECT actor, created_at FROM audit_log WHERE action = ? ORDER BY id', [action]);
  }

  it.each<RestorePausePoint>(['locked', 'copying'])(
    'should serve reads, hold audit rows and writes, and refuse logins while the restore holds the write lock (%s)',
    async (point) => {
      const cookie = await loginCookie(app.t.http);
      const made = await makeBackup(app.t);
      let ticks = 0;
      const heartbeat = setInterval(() => ticks++, 5);
      const held = await heldRestore(made.name, point);
      try {
        expect(writeLockFree()).toBe(false);

        // A write through TypeORM from outside the restore: it must wait, and not on the event loop.
        let written = false;
        const write = app.t.dataSource
          .query("INSERT INTO audit_log (action, actor, detail, created_at) VALUES ('test_write', 'test', '{}', 1)")
          .then(() => (written = true));

        const [health, download, me, list, login] = await Promise.all([
          request(app.t.http).get('/api/health'),
          request(app.t.http).get(`/api/backup/download?name=${made.name}`).set('x-api-key', API_KEY),
          request(app.t.http).get('/api/auth/me').set('Cookie', cookie),
          request(app.t.http).get('/api/backup').set('x-api-key', API_KEY),
          request(app.t.http).post('/api/auth/login').send(ADMIN),
        ]);
        expect([health.status, download.status, me.status, list.status]).toEqual([200, 200, 200, 200]);
        expect((download.body as Buffer).length).toBe(made.size);
        expect(login.status).toBe(503);
        expect(login.headers['retry-after']).toMatch(/^\d+$/);
        expect(login.body.error).toMatch(/restore is in progress/);

        // Timers kept firing while all of that ran against a locked database, and it is still locked.
        const seen = ticks;
        while (ticks < seen + 3) {
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        expect(writeLockFree()).toBe(false);
        // The download's audit row waits in memory; the other write waits too; neither failed.
        expect(await auditRows('backup_download')).toEqual([]);
        expect(written).toBe(false);

        held.release();
        const restored = await held.restore;
        expect(restored.status).toBe(200);
        await write;
        expect(await auditRows('backup_download')).toEqual([{ actor: 'api-key', created_at: expect.any(Number) }]);
        expect(await auditRows('test_write')).toHaveLength(1);
        expect(app.t.app.get(AuditService).heldCount).toBe(0);
        // Logins work again.
        await loginCookie(app.t.http);
      } finally {
        clearInterval(heartbeat);
        held.release();
        await held.restore;
      }
    },
  );
});
