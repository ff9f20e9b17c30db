import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BACKGROUND_READ_BYTES } from '../common/io-chunk';
import { FRAME_HEADER_SIZE, parseWalHeader, scanFrames, startOfCycle, WAL_HEADER_SIZE, WalFile } from './wal-reader';

describe(WalFile.name, () => {
  let dir: string;
  let db: Database.Database;
  let dbFile: string;
  let wal: WalFile;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mc-wal-'));
    dbFile = path.join(dir, 'live.db');
    db = new Database(dbFile);
    db.pragma('journal_mode = WAL');
    db.pragma('wal_autocheckpoint = 0');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
    wal = new WalFile(`${dbFile}-wal`);
  });

  afterEach(() => {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function insert(n: number, tag: string): void {
    db.transaction(() => {
      for (let i = 0; i < n; i++) {
        db.prepare('INSERT INTO t (v) VALUES (?)').run(`${tag}-${i}-${'x'.repeat(200)}`);
      }
    }).immediate();
  }

  function header() {
    const state = wal.state();
    if (state.kind !== 'ok') {
      throw new Error(`WAL state ${state.kind}`);
    }
    return state.header;
  }

  describe('readFrom', () => {
    it('should return every committed frame, one commit per transaction, ending at the end of the file', () => {
      insert(1, 'a');
      insert(50, 'b');
      const h = header();
      const read = wal.readFrom(startOfCycle(h))!;
      // CREATE TABLE + two inserts: three commits.
      expect(read.commits).toHaveLength(3);
      expect(read.next.offset).toBe(fs.statSync(`${dbFile}-wal`).size);
      expect(read.frames.length).toBe(read.next.offset - WAL_HEADER_SIZE);
      // The running checksum after the last commit is the one stored in the last frame's header.
      const last = read.frames.length - (FRAME_HEADER_SIZE + h.pageSize);
      expect(read.next.checksum1).toBe(read.frames.readUInt32BE(last + 16));
      expect(read.next.checksum2).toBe(read.frames.readUInt32BE(last + 20));
      expect(read.commits.map((c) => c.end)).toEqual([...read.commits.map((c) => c.end)].sort((a, b) => a - b));
    });

    it('should return the bytes of the file as they are when the WAL is larger than one read', () => {
      // About 1.5 MiB of frames: several reads of BACKGROUND_READ_BYTES, the last one partial.
      insert(6000, 'big');
      const read = wal.readFrom(startOfCycle(header()))!;
      const onDisk = fs.readFileSync(`${dbFile}-wal`);
      expect(onDisk.length).toBeGreaterThan(4 * BACKGROUND_READ_BYTES);
      expect(read.frames.equals(onDisk.subarray(WAL_HEADER_SIZE))).toBe(true);
      expect(read.commits).toHaveLength(2);
    });

    it('should continue from a saved position with only the new commits', () => {
      insert(3, 'a');
      const first = wal.readFrom(startOfCycle(header()))!;
      insert(2, 'b');
      const second = wal.readFrom(first.next)!;
      expect(second.commits).toHaveLength(1);
      expect(second.frames.length).toBeGreaterThan(0);
      const again = wal.readFrom(second.next)!;
      expect(again.commits).toHaveLength(0);
      expect(again.frames.length).toBe(0);
      expect(again.next).toEqual(second.next);
    });

    it('should return null once the WAL restarts with new salts (salt1 one more, seq one more)', () => {
      insert(3, 'a');
      const h1 = header();
      const read = wal.readFrom(startOfCycle(h1))!;
      db.pragma('wal_checkpoint(PASSIVE)');
      insert(1, 'b');
      const h2 = header();
      expect(wal.readFrom(read.next)).toBeNull();
      expect(h2.salt1).toBe((h1.salt1 + 1) >>> 0);
      expect(h2.checkpointSeq).toBe(h1.checkpointSeq + 1);
      // Frames of the old cycle past the new ones are still in the file but never trusted in the new cycle.
      const fresh = wal.readFrom(startOfCycle(h2))!;
      expect(fresh.commits).toHaveLength(1);
    });

    it('should say empty for a missing WAL and after wal_checkpoint(TRUNCATE)', () => {
      insert(1, 'a');
      db.pragma('wal_checkpoint(TRUNCATE)');
      expect(wal.state()).toEqual({ kind: 'empty' });
      expect(new WalFile(path.join(dir, 'absent-wal')).state()).toEqual({ kind: 'empty' });
    });
  });

  describe('stillAt and frameAfter', () => {
    it('should recognise a position past frames as still valid, and no longer once the WAL restarts', () => {
      insert(3, 'a');
      const read = wal.readFrom(startOfCycle(header()))!;
      expect(wal.stillAt(read.next)).toBe(true);
      expect(wal.stillAt({ ...read.next, checksum1: (read.next.checksum1 + 1) >>> 0 })).toBe(false);
      expect(wal.frameAfter(read.next)).toBe(false);
      insert(1, 'b');
      expect(wal.stillAt(read.next)).toBe(true);
      expect(wal.frameAfter(read.next)).toBe(true);
      db.pragma('wal_checkpoint(RESTART)');
      insert(1, 'c');
      expect(wal.stillAt(read.next)).toBe(false);
    });
  });

  describe('scanFrames', () => {
    it('should drop a torn last frame and its transaction, keeping every commit before it', () => {
      insert(1, 'a');
      insert(1, 'b');
      const h = header();
      const bytes = fs.readFileSync(`${dbFile}-wal`);
      const whole = scanFrames(bytes.subarray(WAL_HEADER_SIZE), startOfCycle(h));
      const torn = scanFrames(bytes.subarray(WAL_HEADER_SIZE, bytes.length - 100), startOfCycle(h));
      expect(torn.commits).toHaveLength(whole.commits.length - 1);
      expect(torn.next.offset).toBe(whole.commits[whole.commits.length - 2].end);
    });

    it('should stop at a frame whose page bytes were altered (checksum chain broken)', () => {
      insert(1, 'a');
      insert(1, 'b');
      const h = header();
      const bytes = fs.readFileSync(`${dbFile}-wal`);
      const whole = scanFrames(bytes.subarray(WAL_HEADER_SIZE), startOfCycle(h));
      const damaged = Buffer.from(bytes);
      const lastFrame = damaged.length - (FRAME_HEADER_SIZE + h.pageSize);
      damaged[lastFrame + FRAME_HEADER_SIZE + 10] ^= 0xff;
      const read = scanFrames(damaged.subarray(WAL_HEADER_SIZE), startOfCycle(h));
      expect(read.commits).toHaveLength(whole.commits.length - 1);
    });

    it('should refuse frames carrying another cycle’s salts', () => {
      insert(1, 'a');
      const h = header();
      const bytes = fs.readFileSync(`${dbFile}-wal`);
      const read = scanFrames(bytes.subarray(WAL_HEADER_SIZE), { ...startOfCycle(h), salt2: (h.salt2 + 1) >>> 0 });
      expect(read.commits).toHaveLength(0);
      expect(read.frames.length).toBe(0);
    });
  });

  describe('parseWalHeader', () => {
    it('should reject a header with a wrong checksum or magic', () => {
      insert(1, 'a');
      const bytes = fs.readFileSync(`${dbFile}-wal`).subarray(0, WAL_HEADER_SIZE);
      expect(parseWalHeader(bytes)).not.toBeNull();
      const badSum = Buffer.from(bytes);
      badSum[31] ^= 1;
      expect(parseWalHeader(badSum)).toBeNull();
      const badMagic = Buffer.from(bytes);
      badMagic[3] = 0;
      expect(parseWalHeader(badMagic)).toBeNull();
      expect(parseWalHeader(bytes.subarray(0, 20))).toBeNull();
    });
  });
});
