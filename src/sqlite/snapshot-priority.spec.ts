import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { runSnapshotWorker } from './snapshot';
import { checksInParallel } from './snapshot-copy';

const SLOW = 60_000;
let dir: string;
let source: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mc-snapshot-priority-'));
  source = path.join(dir, 'live.db');
  const db = new Database(source);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE items(id INTEGER PRIMARY KEY, pad BLOB)');
  const insert = db.prepare('INSERT INTO items (pad) VALUES (randomblob(3000))');
  db.transaction(() => {
    for (let i = 0; i < 500; i++) {
      insert.run();
    }
  }).immediate();
  db.close();
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

describe('snapshot child priority and checking threads', () => {
  it(
    'runs every thread of the child at the nice value asked for, by default the lowest priority',
    async () => {
      const dest = path.join(dir, 'default.db');
      const result = await runSnapshotWorker(source, dest);
      expect(result.threadNice).toBe(19);
      const asService = await runSnapshotWorker(source, path.join(dir, 'nice0.db'), { nice: 0 });
      expect(asService.threadNice).toBe(Math.max(0, os.getPriority(0)));
    },
    SLOW,
  );

  it(
    'proves the same with quick_check and sha256 one after the other as side by side',
    async () => {
      for (const checkThreads of ['serial', 'parallel', 'auto'] as const) {
        const dest = path.join(dir, `${checkThreads}.db`);
        const result = await runSnapshotWorker(source, dest, { checkThreads });
        expect(result.quickCheck).toBe('ok');
        expect(result.sha256).toBe(sha256(dest));
        expect(result.size).toBe(fs.statSync(dest).size);
      }
    },
    SLOW,
  );

  it('checks on two threads only while another core is idle', () => {
    expect(checksInParallel('serial')).toBe(false);
    expect(checksInParallel('parallel')).toBe(true);
    expect(checksInParallel('auto', 2, 0.3)).toBe(true);
    expect(checksInParallel('auto', 2, 1.5)).toBe(false);
    expect(checksInParallel('auto', 1, 0)).toBe(false);
    expect(checksInParallel('auto', 8, 5)).toBe(true);
  });
});
