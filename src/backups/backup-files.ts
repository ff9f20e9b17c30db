import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants, type Dirent, type ReadStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  BackupNotFoundError,
  InvalidBackupNameError,
  UploadInterruptedError,
  UploadTooLargeError,
} from './backup-errors';
import { fsyncDir } from '../common/durable-fs';
import { BACKGROUND_READ_BYTES } from '../common/io-chunk';
import { formatBackupName, parseBackupName, validateBackupName } from './backup-name';
import {
  type InspectResult,
  type IntegrityLevel,
  runCopyWorker,
  runInspectWorker,
  runRestoreWorker,
  runSnapshotWorker,
  type RestoreOptions,
  type RestoreResult,
  type SnapshotOptions,
  type SnapshotResult,
} from '../sqlite/snapshot';
import { type BackupFileInfo, BackupListing } from './backup-listing';
import { hasJournalBeside, publishAs, publishNew, removeLeftovers } from './backup-temp';
import { type ScratchCopy, type SnapshotInfo, snapshotInfo } from './snapshot-info';
import { TEMP_MAIN_PATTERN, TEMP_PREFIX, TEMP_SUFFIX } from './temp-name';
import { receiveStream } from './upload-receiver';

export { BackupNotFoundError, InvalidBackupNameError, UploadInterruptedError, UploadTooLargeError };
export type { BackupFileInfo, ScratchCopy, SnapshotInfo };

/** Error codes that mean "no such backup file": gone, a symlink, or not a regular file. */
const GONE_CODES = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'EISDIR', 'NOT_REGULAR', 'ENXIO']);
const isGone = (err: unknown): boolean => GONE_CODES.has(errCode(err) ?? '');

/** How every existing file of the folder is opened for reading: never blocking, never through a symlink. */
export const READ_REGULAR_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOFOLLOW;

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
const SQLITE_SIBLINGS = ['-journal', '-wal', '-shm'] as const;

function errCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Everything that reads or writes the backups folder. Names that reach the filesystem have passed
 * validateBackupName and resolve to a direct child of the folder; symlinks and folders are never followed,
 * replaced or removed; a published backup is never overwritten.
 */
export class BackupFiles {
  /** Temp names of snapshots running in this process, so removeLeftovers cannot pull one from under them. */
  readonly active = new Set<string>();
  readonly root: string;
  private readonly listing: BackupListing;

  constructor(readonly dir: string) {
    this.root = path.resolve(dir);
    this.listing = new BackupListing(this.root, () => this.readEntries());
  }

  async ensureDir(): Promise<void> {
    await fsp.mkdir(this.root, { recursive: true, mode: DIR_MODE });
    // mkdir's mode is filtered by the umask and ignored for an existing folder.
    await fsp.chmod(this.root, DIR_MODE);
  }

  fsyncDir(): Promise<void> {
    return fsyncDir(this.root);
  }

  /** Validates `name` and returns its absolute path, guaranteed to be a direct child of the backups folder. */
  resolveInside(name: string): string {
    const check = validateBackupName(name);
    if (!check.ok) {
      throw new InvalidBackupNameError(check.reason);
    }
    const resolved = path.resolve(this.root, check.name);
    if (path.dirname(resolved) !== this.root || path.basename(resolved) !== check.name) {
      throw new InvalidBackupNameError('Invalid backup name');
    }
    return resolved;
  }

  /** Deletes what a killed snapshot left behind. Call at start-up, before any snapshot of this process starts. */
  removeLeftovers(): Promise<string[]> {
    return removeLeftovers(this);
  }

  /** See {@link publishNew}: a fresh `<prefix>YYYY-MM-DD_HH-MM-SS[-n].db` name, never overwriting. */
  publishTemp(tmp: string, prefix: string, now: Date): Promise<string> {
    return publishNew(this, tmp, prefix, now);
  }

  /** See {@link publishAs}: exactly `name`, false when it is taken. */
  publishTempAs(tmp: string, name: string): Promise<boolean> {
    return publishAs(this, tmp, name);
  }

  /** The backup files, newest first (see BackupListing for the cache). */
  list(): Promise<BackupFileInfo[]> {
    return this.listing.list();
  }

  /** How many times the folder was actually read and every file stat'ed (a test counts them). */
  get scans(): number {
    return this.listing.scans;
  }

  invalidate(): void {
    this.listing.invalidate();
  }

  /** Null when absent or not a regular file (a symlink counts as not regular). */
  async statBackup(name: string): Promise<{ size: number; mtimeMs: number } | null> {
    const full = this.resolveInside(name);
    try {
      const st = await fsp.lstat(full);
      return st.isFile() ? { size: st.size, mtimeMs: st.mtimeMs } : null;
    } catch (err) {
      if (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR') {
        return null;
      }
      throw err;
    }
  }

  async remove(name: string): Promise<'removed' | 'absent' | 'not_regular'> {
    const full = this.resolveInside(name);
    let isFile: boolean;
    try {
      isFile = (await fsp.lstat(full)).isFile();
    } catch (err) {
      if (errCode(err) === 'ENOENT') {
        return 'absent';
      }
      throw err;
    }
    if (!isFile) {
      return 'not_regular';
    }
    try {
      // unlink never follows a symlink and refuses a folder, so a swap after the lstat cannot reach further.
      await fsp.unlink(full);
      this.invalidate();
    } catch (err) {
      if (errCode(err) === 'ENOENT') {
        return 'absent';
      }
      if (errCode(err) === 'EISDIR') {
        return 'not_regular';
      }
      throw err;
    }
    await this.fsyncDir();
    return 'removed';
  }

  /**
   * Hot-copies the live database into a temp file here (see runSnapshotWorker), then publishes it under the first
   * free `<prefix>…[-seq].db` name for `now`. Publishing is a hard link, which fails on an existing name instead of
   * replacing it. On failure nothing is left under a `.db` name and the error is rethrown.
   */
  async snapshot(
    sourceDbPath: string,
    prefix: string,
    now: Date,
    options: SnapshotOptions = {},
  ): Promise<SnapshotInfo> {
    const started = performance.now();
    // Fail on a bad prefix or date before doing any work.
    formatBackupName(prefix, now, 1);
    return this.publishSnapshot(await this.copyToTemp(sourceDbPath, options), prefix, now, started);
  }

  /**
   * Publishes a copy from {@link copyToTemp} as {@link snapshot} does (`startedMs`: when its copy began, for the
   * duration). The temp name is gone afterwards, published or not.
   */
  async publishSnapshot(
    copy: { tmp: string; result: SnapshotResult },
    prefix: string,
    now: Date,
    startedMs = performance.now(),
  ): Promise<SnapshotInfo> {
    const { tmp, result } = copy;
    let name: string;
    try {
      name = await this.publishTemp(tmp, prefix, now);
    } catch (err) {
      await this.discardTemp(tmp).catch(() => undefined);
      throw err;
    }
    // publishTemp already unlinked the temp name; this only forgets it. A failure here is for removeLeftovers.
    await this.discardTemp(tmp).catch(() => undefined);
    return snapshotInfo(name, result, now, startedMs);
  }

  /** sha256 and size of a backup, streamed (reads of BACKGROUND_READ_BYTES), never following a symlink. */
  async hash(name: string): Promise<{ sha256: string; size: number }> {
    const { stream, size } = await this.openForRead(name).catch((err: unknown) => {
      throw isGone(err) ? new BackupNotFoundError() : err;
    });
    const hash = createHash('sha256');
    await pipeline(stream, hash);
    return { sha256: hash.digest('hex'), size };
  }

  /**
   * A read stream of a backup for download, opened with O_NOFOLLOW and checked to be a regular file through the
   * same descriptor (so a swap after the check cannot redirect it). Null when absent or not a regular file.
   */
  async openForDownload(name: string): Promise<{ stream: ReadStream; size: number } | null> {
    try {
      return await this.openForRead(name);
    } catch (err) {
      if (isGone(err)) {
        return null;
      }
      throw err;
    }
  }

  private async openForRead(name: string): Promise<{ stream: ReadStream; size: number }> {
    const full = this.resolveInside(name);
    // O_NONBLOCK: a FIFO under a backup's name would otherwise block this open (and a thread of libuv's pool with
    // it) until something writes to it; five of them starve every file operation of the process.
    const handle = await fsp.open(full, READ_REGULAR_FLAGS);
    try {
      const st = await handle.stat();
      if (!st.isFile()) {
        throw Object.assign(new Error('Not a regular file'), { code: 'NOT_REGULAR' });
      }
      return { stream: handle.createReadStream({ highWaterMark: BACKGROUND_READ_BYTES }), size: st.size };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /**
   * What a backup is (see runInspectWorker), in a worker thread. {@link BackupNotFoundError} when the file is gone
   * or is not a regular file, whenever that is found out (a delete can land while the worker runs).
   */
  async inspect(name: string, options: { integrity: IntegrityLevel; hash: boolean }): Promise<InspectResult> {
    const full = this.resolveInside(name);
    let result: InspectResult;
    try {
      result = await runInspectWorker(full, options);
    } catch (err) {
      throw isGone(err) ? new BackupNotFoundError() : err;
    }
    if (!result.opened && (await this.statBackup(name)) === null) {
      // SQLite could not open it because it went away, not because it is broken.
      throw new BackupNotFoundError();
    }
    return result;
  }

  /** Same for a temp file of this folder (an upload, a drill's scratch copy). */
  inspectTemp(
    tmp: string,
    options: { integrity: IntegrityLevel; hash: boolean; makeStandalone?: boolean },
  ): Promise<InspectResult> {
    this.assertTemp(tmp);
    return runInspectWorker(tmp, options);
  }

  /** The same from a temp file of this folder (a backup's scratch copy, migrated to this build's schema). */
  restoreTempInto(tmp: string, liveDbPath: string, options: RestoreOptions = {}): Promise<RestoreResult> {
    this.assertTemp(tmp);
    return runRestoreWorker(tmp, liveDbPath, options);
  }

  /**
   * Restores a backup into a new scratch temp file here, by the same page copy a real restore uses (for the restore
   * drill). The caller must {@link discardTemp} it.
   */
  async restoreBackupToTemp(name: string): Promise<{ tmp: string; result: RestoreResult }> {
    const source = this.resolveInside(name);
    const tmp = await this.createTemp();
    try {
      return { tmp, result: await runRestoreWorker(source, tmp) };
    } catch (err) {
      await this.discardTemp(tmp).catch(() => undefined);
      throw err;
    }
  }

  /**
   * A restore's scratch copy of a backup (or of a temp file here: a point in time not yet published), byte for byte
   * with the sha256 of what was written, so the caller can prove it holds the bytes it verified; not fsynced (it is
   * thrown away). Beside a `-wal` or `-journal` (not the file SQLite would read) a backup is copied page by page
   * through SQLite, with `sha256` null. The caller must {@link discardTemp} the result.
   */
  async copyBackupToScratch(from: string | { temp: string }): Promise<ScratchCopy> {
    const source =
      typeof from === 'string' ? this.resolveInside(from) : path.join(this.root, this.assertTemp(from.temp));
    if (await hasJournalBeside(source)) {
      if (typeof from !== 'string') {
        throw new Error('A temp database with a -wal or -journal beside it');
      }
      const { tmp } = await this.restoreBackupToTemp(from);
      return { tmp, sha256: null };
    }
    const tmp = this.reserveTemp(); // the worker creates it (O_EXCL): the one raw write descriptor of a restore
    try {
      const copy = await runCopyWorker(source, tmp);
      return { tmp, sha256: copy.sha256 };
    } catch (err) {
      await this.discardTemp(tmp).catch(() => undefined);
      throw err;
    }
  }

  /** See {@link receiveStream}: the caller must publish or discard the returned temp file. */
  receiveUpload(body: Readable, maxBytes: number): Promise<{ tmp: string; size: number }> {
    return receiveStream(this, body, maxBytes);
  }

  /**
   * Building block: a verified, fsynced, 0600 copy of `sourceDbPath` under a fresh hidden temp name in this
   * folder (same filesystem, so it can be linked into place). The caller must publish or {@link discardTemp} it.
   */
  async copyToTemp(
    sourceDbPath: string,
    options: SnapshotOptions = {},
  ): Promise<{ tmp: string; result: SnapshotResult }> {
    // No chmod here: a folder's mode is ensureDir's business at start-up.
    await fsp.mkdir(this.root, { recursive: true, mode: DIR_MODE });
    const tmp = await this.createTemp();
    try {
      const result = await runSnapshotWorker(sourceDbPath, tmp, options);
      return { tmp, result };
    } catch (err) {
      await this.discardTemp(tmp).catch(() => undefined);
      throw err;
    }
  }

  /**
   * A new empty 0600 file under a hidden temp name in this folder, which list() never shows and removeLeftovers
   * clears after a crash. The caller must {@link publishTemp} or {@link discardTemp} it.
   */
  async createTemp(): Promise<string> {
    const tmp = this.reserveTemp();
    try {
      // Exclusive and private from the start: SQLite gives its -journal/-wal/-shm the main file's mode, so the
      // copy's contents are never readable by others at any point.
      const handle = await fsp.open(tmp, 'wx', FILE_MODE);
      await handle.close();
      await fsp.chmod(tmp, FILE_MODE);
      return tmp;
    } catch (err) {
      await this.discardTemp(tmp).catch(() => undefined);
      throw err;
    }
  }

  /** A fresh temp name, kept from removeLeftovers like any temp, for a writer that creates the file exclusively. */
  private reserveTemp(): string {
    const tmpName = `${TEMP_PREFIX}${randomBytes(12).toString('hex')}${TEMP_SUFFIX}`;
    this.active.add(tmpName);
    return path.join(this.root, tmpName);
  }

  /** Removes a temp file from {@link copyToTemp} and any SQLite sibling of it. Missing files are fine. */
  async discardTemp(tmp: string): Promise<void> {
    const tmpName = this.assertTemp(tmp);
    try {
      for (const file of [tmp, ...SQLITE_SIBLINGS.map((s) => tmp + s)]) {
        await fsp.unlink(file).catch((err: unknown) => {
          if (errCode(err) !== 'ENOENT') {
            throw err;
          }
        });
      }
    } finally {
      this.active.delete(tmpName);
    }
  }

  /** The highest sequence number on disk for `prefix` in `now`'s second (a seam the collision test replaces). */
  async highestSeq(prefix: string, now: Date): Promise<number> {
    const second = Math.floor(now.getTime() / 1000) * 1000;
    let highest = 0;
    for (const entry of await this.readEntries()) {
      const parsed = parseBackupName(entry.name);
      if (parsed && parsed.prefix === prefix && parsed.createdAtMs === second) {
        highest = Math.max(highest, parsed.seq);
      }
    }
    return highest;
  }

  assertTemp(tmp: string): string {
    const tmpName = path.basename(tmp);
    if (path.dirname(tmp) !== this.root || !TEMP_MAIN_PATTERN.test(tmpName)) {
      throw new Error('Not a temp file of this backups folder');
    }
    return tmpName;
  }

  isActive(entryName: string): boolean {
    for (const tmpName of this.active) {
      if (entryName === tmpName || SQLITE_SIBLINGS.some((s) => entryName === tmpName + s)) {
        return true;
      }
    }
    return false;
  }

  async readEntries(): Promise<Dirent[]> {
    try {
      return await fsp.readdir(this.root, { withFileTypes: true });
    } catch (err) {
      if (errCode(err) === 'ENOENT') {
        return [];
      }
      throw err;
    }
  }
}
