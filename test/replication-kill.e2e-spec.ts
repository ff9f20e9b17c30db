import Database from 'better-sqlite3';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { typeScriptEntrySource } from '../src/common/typescript-entry';
import { OffsiteBucket } from '../src/offsite/offsite-bucket';
import { rebuildAt } from '../src/replication/replica-rebuild';
import { readWindow } from '../src/replication/replica-window';
import { ReplicaStore } from '../src/replication/replica-store';
import type { KillPoint } from '../src/replication/shipper-io';
import {
  type AgeKeys,
  BUCKET,
  makeAgeKeys,
  PREFIX,
  type S3Server,
  startS3,
  useTestCredentials,
} from './helpers/s3-fixtures';
import { notesIn, openNotesDatabase, replicaStoreAt } from './helpers/replica-fixtures';
import type { ShipperChildConfig, ShipperChildMessage } from './helpers/shipper-child';

/**
 * SIGKILL of the process that ships the WAL, mid-segment and mid-checkpoint: a child process runs the Shipper (its
 * worker thread included) and kills itself with SIGKILL at a fault point; another one starts on the same files.
 * Every commit made before the kill is restorable afterwards, and the history either goes on in the same generation
 * or a new one starts with its reason (and the window shows the gap): never a silent one.
 */

interface Child {
  proc: ChildProcess;
  generations: { generation: string; reason: string }[];
  exited: Promise<NodeJS.Signals | number | null>;
  next(type: ShipperChildMessage['type']): Promise<void>;
}

const CHILD = path.join(__dirname, 'helpers', 'shipper-child.ts');

describe('Replication killed mid-segment and mid-checkpoint (e2e, child process + SIGKILL)', () => {
  let dir: string;
  let s3: S3Server;
  let keys: AgeKeys;
  let dbFile: string;
  let app: Database.Database;
  let bucket: OffsiteBucket;
  let store: ReplicaStore;
  let now: number;
  const children: Child[] = [];

  beforeAll(() => useTestCredentials());

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mc-repl-kill-'));
    s3 = await startS3();
    keys = await makeAgeKeys(dir);
    dbFile = path.join(dir, 'live.db');
    app = openNotesDatabase(dbFile);
    ({ bucket, store } = replicaStoreAt(s3.endpoint, keys));
    now = Date.UTC(2026, 11, 3, 12, 0, 0, 0);
  });

  afterEach(async () => {
    for (const child of children.splice(0)) {
      child.proc.kill('SIGKILL');
      await child.exited;
    }
    app.close();
    bucket.destroy();
    await s3.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function startChild(options: { killAt?: KillPoint; walLimitBytes?: number } = {}): Child {
    const config: ShipperChildConfig = {
      dbPath: dbFile,
      spoolDir: path.join(dir, 'replication'),
      endpoint: s3.endpoint,
      bucket: BUCKET,
      prefix: PREFIX,
      recipient: keys.recipient,
      identityFile: keys.identityFile,
      now,
      ...options,
    };
    const proc = spawn(process.execPath, ['-e', typeScriptEntrySource(CHILD)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, MC_SHIPPER_CHILD: JSON.stringify(config) },
    });
    const waiting: { type: string; resolve: () => void }[] = [];
    const child: Child = {
      proc,
      generations: [],
      exited: new Promise((resolve) => proc.once('exit', (code, signal) => resolve(signal ?? code))),
      next: (type) => new Promise((resolve) => waiting.push({ type, resolve })),
    };
    proc.on('message', (message: ShipperChildMessage) => {
      if (message.type === 'generation') {
        child.generations.push({ generation: message.generation, reason: message.reason });
      }
      const index = waiting.findIndex((w) => w.type === message.type);
      if (index >= 0) {
        waiting.splice(index, 1)[0].resolve();
      }
    });
    children.push(child);
    return child;
  }

  async function round(child: Child): Promise<void> {
    now += 1000;
    const done = child.next('round-done');
    child.proc.send({ type: 'round', now });
    await done;
  }

  function insert(body: string): void {
    app.prepare('INSERT INTO notes (body) VALUES (?)').run(body);
  }

  const CASES: { point: KillPoint; walLimitBytes?: number; continues: boolean }[] = [
    // The segment is in the spool, its position not saved: the next process drops it and reads those frames again.
    { point: 'segment-spooled', continues: true },
    // PASSIVE copied every frame but "closed" was not saved: the next writer restarts the WAL, which the next
    // process cannot tell from a foreign reset, so it starts over from a snapshot, audited.
    { point: 'checkpoint-copied', continues: false },
    // "closed" saved under the lock: the restarted WAL is the expected next cycle.
    { point: 'checkpoint-closed', continues: true },
    // Past the WAL bound (every checkpoint truncates): killed after the state was saved and before the TRUNCATE…
    { point: 'before-truncate', walLimitBytes: 1, continues: true },
    // …and after it, before our own first commit gave the next cycle its expected salt: the next writer's header
    // has random salts, so a new generation starts, audited.
    { point: 'after-truncate', walLimitBytes: 1, continues: false },
  ];

  it.each(CASES)('should lose no commit when killed at $point', async ({ point, walLimitBytes, continues }) => {
    // A first process streams, then is killed between two rounds.
    const first = startChild({ walLimitBytes });
    await first.next('ready');
    await round(first);
    insert('before-0');
    await round(first);
    insert('before-1');
    await round(first);
    first.proc.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');

    // A second one resumes and kills itself at the fault point during its first round.
    insert('during');
    const second = startChild({ killAt: point, walLimitBytes });
    await second.next('ready');
    now += 1000;
    second.proc.send({ type: 'round', now });
    expect(await second.exited).toBe('SIGKILL');

    // Another writer's commit while nothing ships, then a third process.
    insert('while-down');
    now += 1000;
    const third = startChild({ walLimitBytes });
    await third.next('ready');
    await round(third);
    insert('after');
    await round(third);

    const latest = await rebuildAt(store, 'latest', { scratchDir: path.join(dir, 'scratch') });
    expect(notesIn(latest.file)).toEqual(['before-0', 'before-1', 'during', 'while-down', 'after']);
    const reasons = [...first.generations, ...second.generations, ...third.generations].map((g) => g.reason);
    const window = await readWindow(store);
    if (continues) {
      expect(reasons).toEqual(['start']);
      expect(window.generations).toHaveLength(1);
      expect(window.gaps).toEqual([]);
    } else {
      expect(reasons).toEqual(['start', 'restart_lost_wal']);
      expect(window.gaps).toHaveLength(1);
    }
    // Nothing left half-written in the spool.
    expect(fs.readdirSync(path.join(dir, 'replication')).filter((f) => f !== 'state.json')).toEqual([]);
  });
});
