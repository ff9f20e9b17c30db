import * as fs from 'node:fs';
import * as path from 'node:path';
import request from 'supertest';
import { BackupManifests } from '../src/backups/backup-manifests';
import { Clock } from '../src/common/clock';
import { auditEvents, exists, sha256, writeSqliteFile } from './helpers/backup-fixtures';
import { API_KEY, startTestApp, type TestApp } from './helpers/test-app';

const START = Date.UTC(2026, 5, 15, 12, 0, 0);
/** Written while the clock was 400 days ahead, then the clock was corrected. */
const FUTURE = [
  'mc-backup-2027-07-20_03-00-00.db',
  'mc-backup-2027-07-21_03-00-00.db',
  'mc-backup-2028-01-01_03-00-00.db',
];

describe('Local retention (e2e, real files)', () => {
  let t: TestApp;
  /** The service's clock, moved by the test. */
  let NOW: Date;

  beforeEach(async () => {
    NOW = new Date(START);
    t = await startTestApp();
    jest.spyOn(t.app.get(Clock), 'now').mockImplementation(() => new Date(NOW));
  });

  afterEach(async () => {
    await t?.close();
  });

  const inBackups = (name: string) => path.join(t.backupsDir, name);
  const onDisk = () =>
    fs
      .readdirSync(t.backupsDir)
      .filter((name) => name.endsWith('.db'))
      .sort();

  async function settings(values: Record<string, unknown>): Promise<void> {
    await request(t.http).put('/api/settings').set('x-api-key', API_KEY).send({ settings: values }).expect(200);
  }

  async function backup(): Promise<string> {
    const response = await request(t.http).post('/api/backup').set('x-api-key', API_KEY).expect(200);
    return (response.body as { backup: { name: string } }).backup.name;
  }

  it('should keep the backup its own request made when three names are 400 days ahead, and audit them once', async () => {
    await settings({ 'general.backup_retention_count': 3 });
    for (const name of FUTURE) {
      writeSqliteFile(inBackups(name));
    }
    const futureHashes = FUTURE.map((name) => sha256(inBackups(name)));

    const first = await backup();
    expect(exists(inBackups(first))).toBe(true);
    expect((await auditEvents(t, 'backup_prune')).map((e) => e.detail.name)).toEqual([]);

    // The scheduled path (the task run by hand) prunes through the same code.
    NOW.setUTCSeconds(NOW.getUTCSeconds() + 1);
    const run = await request(t.http)
      .post('/api/scheduler')
      .set('x-api-key', API_KEY)
      .send({ task_id: 'auto_backup' })
      .expect(200);
    expect(run.body).toMatchObject({ ok: true });
    const scheduled = onDisk().filter((name) => name.startsWith('mc-backup-2026-'));
    expect(scheduled).toHaveLength(2);
    expect(scheduled).toContain(first);

    // Two more real backups: the count (3) now applies to the real ones only; the future-named stay untouched.
    const made = [first, scheduled.find((n) => n !== first)!];
    for (let i = 0; i < 2; i++) {
      NOW.setUTCSeconds(NOW.getUTCSeconds() + 1);
      made.push(await backup());
    }
    expect(onDisk()).toEqual([...FUTURE, ...made.slice(1)].sort());
    expect(FUTURE.map((name) => sha256(inBackups(name)))).toEqual(futureHashes);
    expect((await auditEvents(t, 'backup_prune')).map((e) => e.detail.name)).toEqual([first]);

    // Audited once per file, with how far ahead it is, however many passes saw it.
    const flagged = await auditEvents(t, 'backup_future_named');
    expect(flagged.map((e) => e.detail.name).sort()).toEqual(FUTURE);
    const first2027 = flagged.find((e) => e.detail.name === FUTURE[0])!;
    expect(first2027.detail.ahead_seconds).toBeGreaterThan(390 * 24 * 3600);
    expect(first2027.actor).toBe('api-key');
  });

  it('should not age the newest real backup away because of a name from the future', async () => {
    await settings({ 'general.backup_retention_count': 1000, 'general.backup_retention_days': 1 });
    for (const name of FUTURE) {
      writeSqliteFile(inBackups(name));
    }
    const real = 'mc-backup-2026-03-01_03-00-00.db';
    writeSqliteFile(inBackups(real));
    // The CLI `backups prune` and the service's own pass: no new backup, only the rules.
    const { BackupsService } = await import('../src/backups/backups.service');
    expect(await t.app.get(BackupsService).prune()).toEqual([]);
    expect(onDisk()).toEqual([...FUTURE, real].sort());
  });

  it('should never prune a copy pulled from the bucket (recorded as from outside), under count or age', async () => {
    await settings({ 'general.backup_retention_count': 1, 'general.backup_retention_days': 1 });
    // Exactly what a pull leaves: the file under its own mc-backup- name, and a manifest saying it came from outside.
    const pulled = 'mc-backup-2026-01-01_03-00-00.db';
    writeSqliteFile(inBackups(pulled));
    await t.app.get(BackupManifests).record(pulled, { kind: 'upload', sha256: sha256(inBackups(pulled)) });
    const own = 'mc-backup-2026-02-01_03-00-00.db';
    writeSqliteFile(inBackups(own));

    const first = await backup();
    NOW.setUTCSeconds(NOW.getUTCSeconds() + 1);
    const second = await backup();

    expect(onDisk()).toEqual([pulled, second].sort());
    expect((await auditEvents(t, 'backup_prune')).map((e) => e.detail.name).sort()).toEqual([first, own].sort());
  });
});
