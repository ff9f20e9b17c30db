import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { runProbeWorker } from './database-probe';

/**
 * The health probe's worker on real files: quick_check alone passes the fixture (a table's root page overwritten
 * with an index page, found by the fuzz test), but every read of that table fails, and the probe must say so.
 */
describe('runProbeWorker', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'mc-probe-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const probeCopyOf = (fixture: string) => {
    const dbPath = path.join(dir, 'mission-control.db');
    copyFileSync(fixture, dbPath);
    return runProbeWorker({ dbPath, busyTimeoutMs: 5000 });
  };

  it('reports a table that quick_check passes but no read can get through', async () => {
    const reply = await probeCopyOf(path.join(__dirname, '..', '..', 'test', 'fixtures', 'table-root-overwritten.db'));
    expect(reply).toMatchObject({ ok: false, quickCheck: expect.stringMatching(/malformed/) });
  });

  it('passes a sound database', async () => {
    const sound = path.join(dir, 'sound.db');
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(sound);
    db.exec("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('a'), ('b');");
    db.close();
    expect(await probeCopyOf(sound)).toMatchObject({ ok: true, quickCheck: 'ok' });
  });
});
