import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants, createWriteStream, type Dirent, lstatSync, type ReadStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DomainError } from '../common/domain-error';
import { fsyncDir } from '../common/durable-fs';
import {
  type BackupKind,
  compareNewestFirst,
  formatBackupName,
  parseBackupName,
  validateBackupName,
} from './backup-name';
import {
  type InspectResult,
  type IntegrityLevel,
  runInspectWorker,
  runRestoreWorker,
  runSnapshotWorker,
  type RestoreOptions,
  type RestoreResult,
  type SnapshotOptions,
  type SnapshotResult,
} from '../sqlite/snapshot';

export interface BackupFileInfo {
  name: string;
  size: number;
  mtimeMs: number;
  /** From the name when it is one of ours (second precision), else the file's mtime. */
  createdAtMs: number;
  /** From the name's prefix; null for a valid `.db` name that is not one of ours. `mc-backup-` reads as manual. */
  kind: BackupKind | null;
  seq: number;
}

export interface SnapshotInfo {
  name: string;
  size: number;
  createdAtMs: number;
  durationMs: number;
  pages: number;
  /** sqlite3_backup_step calls made; 2 means the copy ran in one step (see snapshot.ts). */
  steps: number;
  /** Computed by the worker right after the fsync (null when `hash: false`). */
  sha256: string | null;
  sqliteVersion: string | null;
  schemaVersion: number | null;
  quickCheck: 'ok';
  /** How the pages were copied (see snapshot-copy.ts). */
  method: 'raw' | 'backup-api';
}

/** The upload body went past the byte cap; nothing was kept. */
export class UploadTooLargeError extends Error {
  constructor() {
    super('Upload exceeds the size limit');
    this.name = 'UploadTooLargeError';
  }
}

/** The client went away mid-upload (or the stream failed); nothing was kept. */
export class UploadInterruptedError extends Error {
  constructor() {
    super('Upload interrupted');
    this.name = 'UploadInterruptedError';
  }
}

/**
 * The named backup is not (or no longer) a regular file of the folder: it was deleted, or replaced by something
 * that is not a backup, between the caller's check and the work. Every route answers 404 for it (a verify racing a
 * delete must not answer 500), and the CLI prints the message.
 */
export class BackupNotFoundError extends DomainError {
  readonly kind = 'not_found';

  constructor() {
    super('Backup not found');
    this.name = 'BackupNotFoundError';
  }
}

/** Error codes that mean "no such backup file": gone, a symlink, or not a regular file. */
const GONE_CODES = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'EISDIR', 'NOT_REGULAR', 'ENXIO']);

function isGone(err: unknown): boolean {
  return GONE_CODES.has(errCode(err) ?? '');
}

export class InvalidBackupNameError extends DomainError {
  readonly kind = 'invalid';

  constructor(reason: string) {
    super(reason);
    this.name = 'InvalidBackupNameError';
  }
}

/** How every existing file of the folder is opened for reading: never blocking, never through a symlink. */
export const READ_REGULAR_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOFOLLOW;

const DIR_MODE = 0o700;
/** A cached listing is trusted once the folder's last change is this much older than the listing. */
const LISTING_TRUST_AFTER_MS = 1000;
const FILE_MODE = 0o600;
/**
 * list() stats this many entries synchronously between two turns of the event loop. Measured on this machine:
 * 10,000 lstat calls took 270–440 ms through the libuv pool (a promise and a pool round trip each) against 30–110 ms
 * synchronously, both under a load average of 8; 256 local lstat calls block the loop well under a millisecond.
 */
const STAT_BATCH = 256;
/** Far above anything one second can produce; only guards against looping forever on a broken filesystem. */
const MAX_SEQ = 10_000;

const TEMP_PREFIX = '.mc-tmp-';
const TEMP_SUFFIX = '.db.part';
const SQLITE_SIBLINGS = ['-journal', '-wal', '-shm'] as const;
const TEMP_PATTERN = /^\.mc-tmp-[0-9a-f]{16,64}\.db\.part(?:-journal|-wal|-shm)?$/;
const TEMP_MAIN_PATTERN = /^\.mc-tmp-[0-9a-f]{16,64}\.db\.part$/;

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
  /** Temp files of snapshots running in this process, so removeLeftovers cannot pull one from under them. */
  private readonly active = new Set<string>();
  private readonly root: string;
  private listing: { stamp: string; files: BackupFileInfo[]; trusted: boolean } | null = null;
  private folderMtimeMs = 0;
  private scanCount = 0;

  constructor(readonly dir: string) {
    this.root = path.resolve(dir);
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
  async removeLeftovers(): Promise<string[]> {
    const entries = await this.readEntries();
    const removed: string[] = [];
    for (const entry of entries) {
      if (!TEMP_PATTERN.test(entry.name) || this.isActive(entry.name)) {
        continue;
      }
      const full = path.join(this.root, entry.name);
      const st = await fsp.lstat(full).catch(() => null);
      if (!st?.isFile()) {
        continue;
      }
      try {
        await fsp.unlink(full);
        removed.push(entry.name);
      } catch (err) {
        if (errCode(err) !== 'ENOENT') {
          throw err;
        }
      }
    }
    if (removed.length > 0) {
      await this.fsyncDir();
    }
    return removed;
  }

  /**
   * The backup files, newest first. Cached (issue 10, finding 5: 10,000 GET /api/backup with 1,000 files took 403 s,
   * an lstat and a name parse per file per call): reused while the folder's mtime and ctime are unchanged, which any
   * create, delete or rename in it changes. Only trusted when the listing was taken over a second after the folder's
   * last change (a change within the same timestamp tick could otherwise go unseen), and dropped on every change
   * this process makes. A file rewritten in place keeps its entry (backups are never rewritten).
   */
  async list(): Promise<BackupFileInfo[]> {
    const stamp = await this.folderStamp();
    const cached = this.listing;
    if (cached && stamp !== null && cached.stamp === stamp && cached.trusted) {
      return [...cached.files];
    }
    const wallAtMs = Date.now();
    const files = await this.scan();
    this.listing =
      stamp === null ? null : { stamp, files, trusted: wallAtMs - this.folderMtimeMs > LISTING_TRUST_AFTER_MS };
    return [...files];
  }

  /** How many times the folder was actually read and every file stat'ed (a test counts them). */
  get scans(): number {
    return this.scanCount;
  }

  private async folderStamp(): Promise<string | null> {
    try {
      const st = await fsp.stat(this.root, { bigint: true });
      this.folderMtimeMs = Number(st.mtimeNs / 1_000_000n);
      return `${st.ino}:${st.mtimeNs}:${st.ctimeNs}`;
    } catch {
      return null;
    }
  }

  private invalidate(): void {
    this.listing = null;
  }

  private async scan(): Promise<BackupFileInfo[]> {
    this.scanCount += 1;
    const entries = await this.readEntries();
    // Node resolves an unknown dirent type with lstat, so a symlink or folder is never isFile() here.
    const candidates = entries.filter((e) => e.isFile() && validateBackupName(e.name).ok);
    const infos: BackupFileInfo[] = [];
    for (let start = 0; start < candidates.length; start += STAT_BATCH) {
      if (start > 0) {
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      for (const entry of candidates.slice(start, start + STAT_BATCH)) {
        // Gone since the readdir: not listed (throwIfNoEntry); any other failure is thrown as before.
        const st = lstatSync(path.join(this.root, entry.name), { throwIfNoEntry: false });
        if (!st?.isFile()) {
          continue;
        }
        const parsed = parseBackupName(entry.name);
        infos.push({
          name: entry.name,
          size: st.size,
          mtimeMs: st.mtimeMs,
          createdAtMs: parsed ? parsed.createdAtMs : Math.floor(st.mtimeMs),
          kind: parsed ? parsed.kind : null,
          seq: parsed ? parsed.seq : 1,
        });
      }
    }
    return infos.sort(compareNewestFirst);
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
    // No chmod here: a folder's mode is ensureDir's business at start-up.
    await fsp.mkdir(this.root, { recursive: true, mode: DIR_MODE });
    const { tmp, result } = await this.copyToTemp(sourceDbPath, options);
    let name: string;
    try {
      name = await this.publishTemp(tmp, prefix, now);
    } catch (err) {
      await this.discardTemp(tmp).catch(() => undefined);
      throw err;
    }
    // publishTemp already unlinked the temp name; this only forgets it. A failure here is for removeLeftovers.
    await this.discardTemp(tmp).catch(() => undefined);
    const parsed = parseBackupName(name);
    return {
      name,
      size: result.size,
      createdAtMs: parsed ? parsed.createdAtMs : Math.floor(now.getTime() / 1000) * 1000,
      durationMs: performance.now() - started,
      pages: result.pages,
      steps: result.steps,
      sha256: result.sha256,
      sqliteVersion: result.sqliteVersion,
      schemaVersion: result.schemaVersion,
      quickCheck: result.quickCheck,
      method: result.method ?? 'backup-api',
    };
  }

  /** sha256 and size of a backup, streamed (1 MiB reads), never following a symlink. */
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
    // it) until something writes to it; five of them starve every file operation of the process (issue 10, #4).
    const handle = await fsp.open(full, READ_REGULAR_FLAGS);
    try {
      const st = await handle.stat();
      if (!st.isFile()) {
        throw Object.assign(new Error('Not a regular file'), { code: 'NOT_REGULAR' });
      }
      return { stream: handle.createReadStream({ highWaterMark: 1024 * 1024 }), size: st.size };
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

  /** Copies a backup's pages into the live database at `liveDbPath` (see RestoreJob in snapshot.ts). */
  restoreInto(name: string, liveDbPath: string, options: RestoreOptions = {}): Promise<RestoreResult> {
    return runRestoreWorker(this.resolveInside(name), liveDbPath, options);
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
   * Streams `body` into a new temp file here, never holding more than a chunk in memory, and fsyncs it. Past
   * `maxBytes` it stops writing, removes the temp file and throws {@link UploadTooLargeError}: the source is only
   * unpiped, not destroyed, so the caller can still answer the request. The caller must publish or discard the
   * returned temp file.
   */
  async receiveUpload(body: Readable, maxBytes: number): Promise<{ tmp: string; size: number }> {
    const tmp = await this.createTemp();
    let received = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
        received += chunk.length;
        if (received > maxBytes) {
          callback(new UploadTooLargeError());
          return;
        }
        callback(null, chunk);
      },
    });
    const onAborted = (): void => {
      meter.destroy(new UploadInterruptedError());
    };
    const onEnd = (): void => {
      meter.end();
    };
    try {
      // pipeline(meter → file) owns the file side; the request is piped in by hand so that a failure here does not
      // destroy the request (and with it the socket the 413 must still go out on). `flush` fsyncs before close.
      const file = createWriteStream(tmp, { flags: 'r+', flush: true, highWaterMark: 1024 * 1024 });
      try {
        body.on('aborted', onAborted);
        body.on('error', onAborted);
        body.pipe(meter, { end: false });
        if (body.readableEnded) {
          onEnd();
        } else {
          body.once('end', onEnd);
        }
        await pipeline(meter, file);
      } finally {
        body.unpipe(meter);
        body.off('end', onEnd);
        body.off('aborted', onAborted);
        body.off('error', onAborted);
      }
      return { tmp, size: received };
    } catch (err) {
      await this.discardTemp(tmp).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Building block: a verified, fsynced, 0600 copy of `sourceDbPath` under a fresh hidden temp name in this
   * folder (same filesystem, so it can be linked into place). The caller must publish or {@link discardTemp} it.
   */
  async copyToTemp(
    sourceDbPath: string,
    options: SnapshotOptions = {},
  ): Promise<{ tmp: string; result: SnapshotResult }> {
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
    const tmpName = `${TEMP_PREFIX}${randomBytes(12).toString('hex')}${TEMP_SUFFIX}`;
    const tmp = path.join(this.root, tmpName);
    this.active.add(tmpName);
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

  /**
   * Gives the complete temp file `tmp` the first free `<prefix>…[-seq].db` name for `now` and removes the temp
   * name. A hard link fails on an existing name, so nothing is ever replaced. Returns the new name. On failure the
   * temp file is left for the caller to discard.
   */
  async publishTemp(tmp: string, prefix: string, now: Date): Promise<string> {
    // Whatever wrote the temp file, what gets a backup's name is private.
    await fsp.chmod(tmp, FILE_MODE);
    this.assertTemp(tmp);
    // Start above every name still on disk for this second: a name freed by a delete or a prune must not be
    // reused, or the newest backup would sort as the oldest of its second (and the next prune would take it).
    for (let seq = (await this.highestSeq(prefix, now)) + 1; seq <= MAX_SEQ; seq++) {
      const name = formatBackupName(prefix, now, seq);
      const final = this.resolveInside(name);
      try {
        await fsp.link(tmp, final);
        this.invalidate();
      } catch (err) {
        if (errCode(err) === 'EEXIST') {
          continue;
        }
        throw err;
      }
      try {
        await fsp.unlink(tmp);
        await this.fsyncDir();
      } catch (err) {
        // The name is ours (the link just created it); take it back so a failure leaves no `.db` behind.
        await fsp.unlink(final).catch(() => undefined);
        throw err;
      }
      return name;
    }
    throw new Error('No free backup name for this second');
  }

  /**
   * Gives the complete temp file `tmp` exactly the backup name `name` (a copy pulled from off-site keeps its own
   * name). False when that name is taken: nothing is replaced, and the temp file is left for the caller.
   */
  async publishTempAs(tmp: string, name: string): Promise<boolean> {
    await fsp.chmod(tmp, FILE_MODE);
    this.assertTemp(tmp);
    const final = this.resolveInside(name);
    try {
      await fsp.link(tmp, final);
    } catch (err) {
      if (errCode(err) === 'EEXIST') {
        return false;
      }
      throw err;
    }
    try {
      await fsp.unlink(tmp);
      this.active.delete(path.basename(tmp));
      await this.fsyncDir();
    } catch (err) {
      await fsp.unlink(final).catch(() => undefined);
      throw err;
    }
    return true;
  }

  private async highestSeq(prefix: string, now: Date): Promise<number> {
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

  private assertTemp(tmp: string): string {
    const tmpName = path.basename(tmp);
    if (path.dirname(tmp) !== this.root || !TEMP_MAIN_PATTERN.test(tmpName)) {
      throw new Error('Not a temp file of this backups folder');
    }
    return tmpName;
  }

  private isActive(entryName: string): boolean {
    for (const tmpName of this.active) {
      if (entryName === tmpName || SQLITE_SIBLINGS.some((s) => entryName === tmpName + s)) {
        return true;
      }
    }
    return false;
  }

  private async readEntries(): Promise<Dirent[]> {
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
