/**
 * The `snapshot` job as it runs in its own child process (see snapshot.child.ts and runSnapshotWorker): a hot copy
 * of the live database into a temp file, made standalone, quick_checked, fsynced and hashed.
 *
 * Two ways to copy, both read-consistent:
 * - **Pinned read (`raw`)**: a read transaction on the live database whose snapshot is entirely in the main file
 *   (the WAL fully checkpointed when it began), so no checkpoint can change the main file until it ends; the main
 *   file's first `page_count` pages are then copied in large reads and writes and hashed on the way. This is the
 *   Litestream idea without the WAL overlay: only when the overlay would be empty.
 * - **Backup API (`backup-api`)**: SQLite's online backup in one step, as the worker thread does it, when the WAL
 *   could not be pinned that way (or the database is not in WAL mode).
 *
 * Reading the live database's files with plain file descriptors is only allowed here, in a process of its own:
 * on POSIX, closing any descriptor of a file drops every lock the whole process holds on it (sqlite.org/howtocorrupt
 * §2.2). This process therefore closes its own descriptors only after its SQLite connection to the file is closed,
 * and the service process never loads this path (see {@link allowRawReads}).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { SnapshotJob, SnapshotWorkerReply } from './snapshot';

const ALL_PAGES = 0x7fffffff;
/** Read/write unit of the pinned copy: a multiple of every SQLite page size (512 B … 64 KiB). */
const COPY_CHUNK = 8 * 1024 * 1024;
const BUFFERS = 3;
/**
 * Start an fdatasync of the copy after this many more bytes, one at a time, so that its dirty pages go to disk while
 * it is being made instead of all at once at the end. Not for speed: on ext4 (data=ordered) any fsync on the
 * filesystem — the service's own WAL checkpoints on its event loop — waits for the journal commit, and with it for
 * the copy's dirty data; 1 GiB of it stalled the service's loop for up to 1 s in the bench.
 */
const SYNC_EVERY = 32 * 1024 * 1024;
/** Begin a read, checkpoint what it needs into the main file: how often to try before using the backup API. */
const PIN_ATTEMPTS = 3;
/** Map the copy for quick_check (this process only: the mapping never touches the service's RSS). */
const MMAP_LIMIT = 0x7fff0000;
const MIGRATIONS_TABLE = 'migrations';

const readAsync = promisify(fs.read);
const writeAsync = promisify(fs.write);
const fsyncAsync = promisify(fs.fsync);
const fdatasyncAsync = promisify(fs.fdatasync);

let rawReadsAllowed = false;

/** Called by snapshot.child.ts only: this process is not the service, so it may read the live files directly. */
export function allowRawReads(): void {
  rawReadsAllowed = true;
}

export type CopyMethod = 'raw' | 'backup-api';

export interface SnapshotJobOptions {
  /** Try the pinned-read copy first (child process only). */
  raw: boolean;
  /** Use memory-mapped reads (child process only: a mapping of the file counts in this process's RSS). */
  mmap: boolean;
}

function closeQuietly(db: Database.Database | undefined): void {
  try {
    db?.close();
  } catch {
    // A close failure after an earlier error must not mask that error.
  }
}

function openIfExists(file: string): number | undefined {
  try {
    return fs.openSync(file, 'r');
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') {
      return undefined;
    }
    throw err;
  }
}

interface WalIndex {
  /** Last committed frame in the WAL. */
  mxFrame: number;
  /** Frames already copied into the main file. */
  nBackfill: number;
}

/** The wal-index header's two counters (sqlite.org/walformat.html §2.1), or null while a writer is mid-update. */
function readWalIndex(shmFd: number): WalIndex | null {
  const header = Buffer.alloc(136);
  if (fs.readSync(shmFd, header, 0, header.length, 0) !== header.length) {
    return null;
  }
  // Two copies of the index header: equal unless a writer was updating it while we read.
  if (header[12] !== 1 || !header.subarray(0, 48).equals(header.subarray(48, 96))) {
    return null;
  }
  // The wal-index is in native byte order.
  const le = os.endianness() === 'LE';
  return {
    mxFrame: le ? header.readUInt32LE(16) : header.readUInt32BE(16),
    nBackfill: le ? header.readUInt32LE(96) : header.readUInt32BE(96),
  };
}

/**
 * Called inside our read transaction, whose snapshot ends at some frame M. True when the main file now holds exactly
 * that snapshot, and keeps holding it until the transaction ends:
 * - M ≤ `mxFrame` read after the transaction began, so once `nBackfill` ≥ that value every frame of our snapshot
 *   is in the main file;
 * - no checkpoint may copy frames past our read mark (≤ M) while we hold it, so `nBackfill` can never pass M, and
 *   pages of later commits stay in the WAL (sqlite.org/walformat.html §2.3.1, WAL_READ_LOCK).
 * When frames are missing, a PASSIVE checkpoint on a second connection copies them — it cannot wait for or block
 * anyone — and we look again.
 */
function mainFileHoldsSnapshot(shmFd: number, checkpointer: () => Database.Database): boolean {
  const began = readWalIndex(shmFd);
  if (began === null) {
    return false;
  }
  if (began.nBackfill >= began.mxFrame) {
    return true;
  }
  checkpointer().pragma('wal_checkpoint(PASSIVE)');
  const after = readWalIndex(shmFd);
  return after !== null && after.nBackfill >= began.mxFrame;
}

/**
 * Page 1 of the copy as SQLite itself would leave it after switching to rollback-journal mode: file format bytes 1
 * (legacy, no WAL), change counter + 1, the in-header page count valid for it, and this library's version number.
 */
function makeHeaderStandalone(page1: Buffer, pages: number, versionNumber: number): void {
  page1[18] = 1;
  page1[19] = 1;
  const counter = (page1.readUInt32BE(24) + 1) >>> 0;
  page1.writeUInt32BE(counter, 24);
  page1.writeUInt32BE(pages, 28);
  page1.writeUInt32BE(counter, 92);
  page1.writeUInt32BE(versionNumber, 96);
}

function versionNumber(version: string): number {
  const [major, minor, patch] = version.split('.').map(Number);
  return major * 1_000_000 + minor * 1000 + patch;
}

async function readFull(fd: number, buffer: Buffer, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await readAsync(fd, buffer, done, length - done, position + done);
    if (bytesRead === 0) {
      throw new Error('Database file is shorter than its page count');
    }
    done += bytesRead;
  }
}

async function writeFull(fd: number, buffer: Buffer, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesWritten } = await writeAsync(fd, buffer, done, length - done, position + done);
    done += bytesWritten;
  }
}

/** Marks `p` as handled now (it is awaited later), so an early failure does not count as an unhandled rejection. */
function settledLater<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

interface CopyResult {
  method: CopyMethod;
  steps: number;
  /** Computed on the way when the copy streams through this process; null otherwise. */
  sha256: string | null;
}

/**
 * The pinned-read copy (see the file comment). Null when the database cannot be pinned (not WAL, or writers kept
 * the WAL ahead of the main file): the caller then uses the backup API.
 */
async function pinnedCopy(job: SnapshotJob, hash: boolean): Promise<CopyResult | null> {
  if (!rawReadsAllowed) {
    throw new Error('Raw reads of the live database are only allowed in the snapshot child process');
  }
  let db: Database.Database | undefined;
  let second: Database.Database | undefined;
  let shmFd: number | undefined;
  let mainFd: number | undefined;
  let destFd: number | undefined;
  try {
    db = new Database(job.source, { fileMustExist: true, timeout: job.busyTimeoutMs });
    if (String(db.pragma('journal_mode', { simple: true })) !== 'wal') {
      return null;
    }
    const sourcePath = job.source;
    const checkpointer = (): Database.Database =>
      (second ??= new Database(sourcePath, { fileMustExist: true, timeout: job.busyTimeoutMs }));
    let pinned = false;
    for (let attempt = 0; attempt < PIN_ATTEMPTS && !pinned; attempt++) {
      db.exec('BEGIN');
      db.prepare('SELECT count(*) FROM sqlite_schema').get();
      shmFd ??= openIfExists(`${job.source}-shm`);
      // No wal-index file (e.g. locking_mode=EXCLUSIVE keeps it in heap memory): nothing to pin by.
      pinned = shmFd !== undefined && mainFileHoldsSnapshot(shmFd, checkpointer);
      if (!pinned) {
        db.exec('COMMIT');
      }
    }
    closeQuietly(second);
    second = undefined;
    if (!pinned) {
      return null;
    }
    db.pragma('query_only = ON');
    const pageSize = Number(db.pragma('page_size', { simple: true }));
    const pages = Number(db.pragma('page_count', { simple: true }));
    const library = String(db.prepare('SELECT sqlite_version()').pluck().get());
    const total = pages * pageSize;
    mainFd = fs.openSync(job.source, 'r');
    // The new copy, never the live database: normally the empty private temp file BackupFiles.createTemp made;
    // created 0600 when absent.
    const copyPath = job.dest;
    destFd = fs.openSync(copyPath, 'w', 0o600);
    const digest = hash ? createHash('sha256') : null;
    const buffers = Array.from({ length: BUFFERS }, () => Buffer.allocUnsafe(COPY_CHUNK));
    const writes: Array<Promise<void>> = buffers.map(() => Promise.resolve());
    const source = mainFd;
    const dest = destFd;
    let syncing: Promise<void> | undefined;
    let syncedUpTo = 0;
    let reading = total > 0 ? readFull(source, buffers[0], Math.min(COPY_CHUNK, total), 0) : Promise.resolve();
    for (let i = 0, offset = 0; offset < total; i++, offset += COPY_CHUNK) {
      const length = Math.min(COPY_CHUNK, total - offset);
      const buffer = buffers[i % BUFFERS];
      await reading;
      const next = offset + length;
      if (next < total) {
        // Read ahead into the buffer whose write has finished, while this one is hashed and written.
        const j = (i + 1) % BUFFERS;
        await writes[j];
        reading = settledLater(readFull(source, buffers[j], Math.min(COPY_CHUNK, total - next), next));
      }
      if (offset === 0) {
        makeHeaderStandalone(buffer, pages, versionNumber(library));
      }
      digest?.update(buffer.subarray(0, length));
      writes[i % BUFFERS] = settledLater(writeFull(dest, buffer, length, offset));
      if (offset - syncedUpTo >= SYNC_EVERY && syncing === undefined) {
        syncedUpTo = offset;
        syncing = settledLater(
          fdatasyncAsync(dest).finally(() => {
            syncing = undefined;
          }),
        );
      }
    }
    await Promise.all(writes);
    await syncing;
    fs.ftruncateSync(dest, total);
    db.exec('COMMIT');
    return { method: 'raw', steps: 1, sha256: digest ? digest.digest('hex') : null };
  } finally {
    // SQLite's connection first: closing one of our own descriptors of the live files while it is open would drop
    // its locks (POSIX), and a checkpoint could then write the main file under a reader of this process.
    closeQuietly(second);
    closeQuietly(db);
    for (const fd of [mainFd, shmFd, destFd]) {
      if (fd !== undefined) {
        fs.closeSync(fd);
      }
    }
  }
}

/** SQLite's online backup API in one step (one read transaction; writers cannot restart it), then DELETE mode. */
async function backupApiCopy(job: SnapshotJob, mmap: boolean): Promise<CopyResult> {
  let source: Database.Database | undefined;
  let steps = 1;
  try {
    source = new Database(job.source, { fileMustExist: true, timeout: job.busyTimeoutMs });
    source.pragma('query_only = ON');
    if (mmap) {
      source.pragma(`mmap_size = ${MMAP_LIMIT}`);
    }
    await source.backup(job.dest, {
      progress: () => {
        steps += 1;
        if (steps > job.maxSteps) {
          throw new Error('Backup did not complete: source database stayed busy');
        }
        return ALL_PAGES;
      },
    });
  } finally {
    closeQuietly(source);
  }
  let copy: Database.Database | undefined;
  try {
    copy = new Database(job.dest, { fileMustExist: true });
    // The copy inherits the source's WAL flag; left as is, every later open would create -wal/-shm files.
    if (copy.pragma('journal_mode = DELETE', { simple: true }) !== 'delete') {
      throw new Error('Could not switch the copy to rollback-journal mode');
    }
  } finally {
    closeQuietly(copy);
  }
  return { method: 'backup-api', steps, sha256: null };
}

interface CopyFacts {
  pages: number;
  pageSize: number;
  quickCheck: string;
  sqliteVersion: string;
  schemaVersion: number | null;
}

function checkCopy(dest: string, mmap: boolean): CopyFacts {
  let copy: Database.Database | undefined;
  try {
    copy = new Database(dest, { readonly: true, fileMustExist: true });
    if (mmap) {
      copy.pragma(`mmap_size = ${MMAP_LIMIT}`);
    }
    const quickCheck = String(copy.pragma('quick_check', { simple: true }));
    const pages = Number(copy.pragma('page_count', { simple: true }));
    const pageSize = Number(copy.pragma('page_size', { simple: true }));
    const sqliteVersion = String(copy.prepare('SELECT sqlite_version()').pluck().get());
    const hasMigrations =
      copy.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?").get(MIGRATIONS_TABLE) !== undefined;
    let schemaVersion: number | null = null;
    if (hasMigrations) {
      const v = copy.prepare(`SELECT MAX("timestamp") FROM "${MIGRATIONS_TABLE}"`).pluck().get();
      schemaVersion = typeof v === 'number' || typeof v === 'bigint' ? Number(v) : null;
    }
    return { pages, pageSize, quickCheck, sqliteVersion, schemaVersion };
  } finally {
    closeQuietly(copy);
  }
}

/** sha256 of a finished file in a thread of its own, so that it runs beside quick_check on the other core. */
function hashInThread(file: string): Promise<string> {
  const code = `
    const { createHash } = require('node:crypto');
    const fs = require('node:fs');
    const { parentPort, workerData } = require('node:worker_threads');
    const hash = createHash('sha256');
    const fd = fs.openSync(workerData, 'r');
    try {
      const buffer = Buffer.allocUnsafe(${COPY_CHUNK});
      for (;;) {
        const n = fs.readSync(fd, buffer, 0, buffer.length, null);
        if (n === 0) break;
        hash.update(buffer.subarray(0, n));
      }
    } finally {
      fs.closeSync(fd);
    }
    parentPort.postMessage(hash.digest('hex'));`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, { eval: true, workerData: file });
    let digest: string | undefined;
    worker.on('message', (value: string) => {
      digest = value;
    });
    worker.on('error', reject);
    worker.on('exit', (code) => {
      if (digest === undefined) {
        reject(new Error(`Hashing thread exited with code ${code}`));
      } else {
        resolve(digest);
      }
    });
  });
}

async function fsyncFile(file: string): Promise<number> {
  const fd = fs.openSync(file, 'r');
  try {
    await fsyncAsync(fd);
    return fs.fstatSync(fd).size;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Copy, then — at the same time, since each only reads the finished file — quick_check (this thread), fsync (the
 * libuv pool) and, when the copy did not hash on the way, sha256 (a thread of its own).
 */
export async function runSnapshotJob(job: SnapshotJob, options: SnapshotJobOptions): Promise<SnapshotWorkerReply> {
  const started = performance.now();
  const copy = (options.raw ? await pinnedCopy(job, job.hash) : null) ?? (await backupApiCopy(job, options.mmap));
  const copyMs = performance.now() - started;
  const checkStarted = performance.now();
  let hashMs = 0;
  const hashing = (job.hash && copy.sha256 === null ? hashInThread(job.dest) : Promise.resolve(copy.sha256)).then(
    (digest) => {
      hashMs = performance.now() - checkStarted;
      return digest;
    },
  );
  const syncing = fsyncFile(job.dest);
  void settledLater(hashing);
  void settledLater(syncing);
  // Let the pool start the fsync (and the thread its reads) before this thread blocks in quick_check.
  await new Promise<void>((resolve) => setImmediate(resolve));
  let facts: CopyFacts;
  try {
    facts = checkCopy(job.dest, options.mmap);
  } finally {
    // Never leave a read or fsync of the copy running when the caller removes it.
    await Promise.allSettled([hashing, syncing]);
  }
  const checkMs = performance.now() - checkStarted;
  if (facts.quickCheck !== 'ok') {
    return { ok: false, message: 'Backup copy failed quick_check', detail: facts.quickCheck };
  }
  const [sha256, size] = await Promise.all([hashing, syncing]);
  return {
    ok: true,
    pages: facts.pages,
    pageSize: facts.pageSize,
    size,
    steps: copy.steps,
    quickCheck: 'ok',
    copyMs,
    totalMs: performance.now() - started,
    sha256: job.hash ? sha256 : null,
    sqliteVersion: facts.sqliteVersion,
    schemaVersion: facts.schemaVersion,
    hashMs,
    checkMs,
    method: copy.method,
  };
}
