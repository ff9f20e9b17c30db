import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { DataSource } from 'typeorm';
import { BackupFiles } from '../backups/backup-files';
import { MIGRATIONS } from '../database/migrations';
import { ImportFailedError, ImportPipeline, ImportRefusedError, type ImportSource } from './import-pipeline';

/** Sources that lie (size, hash, decryption) or stall: each ends in a clear error, never a hang, and leaves nothing. */
describe(ImportPipeline.name, () => {
  let dir: string;
  let files: BackupFiles;
  let pipeline: ImportPipeline;
  let good: Buffer;

  beforeAll(async () => {
    const seed = fs.mkdtempSync(path.join(tmpdir(), 'mc-import-seed-'));
    const file = path.join(seed, 'app.db');
    const ds = new DataSource({ type: 'better-sqlite3', database: file, migrations: MIGRATIONS, logging: false });
    await ds.initialize();
    await ds.runMigrations();
    await ds.destroy();
    const db = new Database(file);
    db.prepare("INSERT INTO users (username, password_hash, role, created_at) VALUES ('root', 'x', 'admin', 0)").run();
    db.close();
    good = fs.readFileSync(file);
    fs.rmSync(seed, { recursive: true, force: true });
  });

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(tmpdir(), 'mc-import-'));
    files = new BackupFiles(path.join(dir, 'backups'));
    await files.ensureDir();
    pipeline = new ImportPipeline(files);
  });

  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
  const left = (): string[] => fs.readdirSync(path.join(dir, 'backups'));
  const source = (bytes: Buffer, extra: Partial<ImportSource> = {}): ImportSource => ({
    maxStoredBytes: bytes.length,
    open: () => Promise.resolve(Readable.from([bytes])),
    ...extra,
  });

  it('should receive, admit and publish a source that keeps its promises', async () => {
    const received = await pipeline.receive(source(good, { storedSha256: sha(good), sha256: sha(good) }));
    const admitted = await pipeline.admit(received, { livePageSize: null });
    expect(admitted.verdict.problems).toEqual([]);
    expect(await pipeline.publishAs(admitted, 'mc-backup-2026-01-01_00-00-00.db')).toBe(true);
    expect(left()).toEqual(['mc-backup-2026-01-01_00-00-00.db']);
    expect(sha(fs.readFileSync(path.join(dir, 'backups', 'mc-backup-2026-01-01_00-00-00.db')))).toBe(sha(good));
  });

  it('should say the checksum matched only when the source promised one', async () => {
    const promised = await pipeline.admit(await pipeline.receive(source(good, { sha256: sha(good) })), {
      livePageSize: null,
    });
    expect(promised.checksum).toBe('match');
    const unpromised = await pipeline.admit(await pipeline.receive(source(good)), { livePageSize: null });
    expect(unpromised.checksum).toBe('unknown');
  });

  it('should measure stored bytes without keeping them, and name the hash a lying source broke', async () => {
    expect(await pipeline.measureStored(source(good, { storedSha256: sha(good) }))).toEqual({
      size: good.length,
      sha256: sha(good),
    });
    await expect(pipeline.measureStored(source(good, { storedSha256: sha(Buffer.from('x')) }))).rejects.toMatchObject({
      kind: 'mismatch',
      brokenHash: 'stored_sha256',
    });
    await expect(pipeline.receive(source(good, { sha256: sha(Buffer.from('x')) }))).rejects.toMatchObject({
      kind: 'mismatch',
      brokenHash: 'sha256',
    });
    expect(left()).toEqual([]);
  });

  it('should stop a source that sends more than it promised, and keep nothing', async () => {
    const huge = Buffer.concat([good, Buffer.alloc(1024 * 1024)]);
    await expect(pipeline.receive(source(huge, { maxStoredBytes: good.length }))).rejects.toMatchObject({
      kind: 'too_large',
    });
    expect(left()).toEqual([]);
  });

  it('should refuse stored bytes whose sha256 is not the promised one, before decrypting', async () => {
    const decrypt = jest.fn();
    await expect(pipeline.receive(source(good, { storedSha256: sha(Buffer.from('other')), decrypt }))).rejects.toThrow(
      /does not match its manifest/,
    );
    expect(decrypt).not.toHaveBeenCalled();
    expect(left()).toEqual([]);
  });

  it('should end with a clear error when decryption fails at once or mid-stream, and keep nothing', async () => {
    const failsAtOnce = source(good, { decrypt: () => Promise.reject(new Error('no identity matched')) });
    await expect(pipeline.receive(failsAtOnce)).rejects.toMatchObject({ kind: 'decrypt' });
    const failsLater = source(good, {
      decrypt: () => {
        const out = new PassThrough();
        out.write(good.subarray(0, 100));
        setImmediate(() => out.destroy(new Error('chunk 2: authentication failed')));
        return Promise.resolve(out);
      },
    });
    const error = (await pipeline.receive(failsLater).catch((e: unknown) => e)) as ImportFailedError;
    expect(error).toBeInstanceOf(ImportFailedError);
    expect(error.kind).toBe('decrypt');
    expect(error.message).toMatch(/does not decrypt/);
    expect(left()).toEqual([]);
  });

  it('should give up on a source that stalls instead of hanging', async () => {
    const stalled = source(good, {
      stallMs: 200,
      open: () => {
        const out = new PassThrough();
        out.write(good.subarray(0, 10));
        return Promise.resolve(out);
      },
    });
    await expect(pipeline.receive(stalled)).rejects.toMatchObject({ kind: 'stalled' });
    expect(left()).toEqual([]);
  });

  it('should refuse a whole file that is not this application’s database at admission, and keep nothing', async () => {
    const notOurs = Buffer.from('SQLite format 3\0 but not really a database at all'.padEnd(8192, '-'));
    const received = await pipeline.receive(source(notOurs));
    const refused = await pipeline.admit(received, { livePageSize: null }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ImportRefusedError);
    expect(left()).toEqual([]);
  });
});
