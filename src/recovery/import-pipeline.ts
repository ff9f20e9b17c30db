import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { Transform, type TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackupFiles, type ScratchCopy } from '../backups/backup-files';
import type { InspectResult } from '../sqlite/snapshot';
import { admit, type AdmissionVerdict, type Checksum, compareChecksum } from './admission';

/**
 * Where the bytes of a candidate database come from: a bucket object, a local file, a rebuilt point in time. The
 * source states what it promises (sizes, hashes); the pipeline holds it to every promise.
 */
export interface ImportSource {
  /** Opens the stored bytes: ciphertext when `decrypt` is set, else the database itself. */
  open(): Promise<Readable>;
  /** More stored bytes than this and the import stops at once (a lying size never fills the disk). */
  maxStoredBytes: number;
  /** sha256 of the stored bytes, checked before anything is decrypted. */
  storedSha256?: string;
  /** sha256 of the database bytes (after decryption). */
  sha256?: string;
  /** Turns the stored bytes into the database bytes. */
  decrypt?: (stored: Readable) => Promise<Readable>;
  /** No byte for this long and the import fails (a stalled peer never hangs a request). */
  stallMs?: number;
}

export type ImportFailureKind = 'too_large' | 'stalled' | 'mismatch' | 'decrypt' | 'source' | 'missing';

/** Which of the source's promises a `mismatch` broke: the stored bytes' hash or the database's. */
export type BrokenHash = 'stored_sha256' | 'sha256';

/** The source broke a promise or failed; nothing was kept. `message` is one line for the operator. */
export class ImportFailedError extends Error {
  constructor(
    readonly kind: ImportFailureKind,
    message: string,
    override readonly cause?: unknown,
    readonly brokenHash?: BrokenHash,
  ) {
    super(message);
    this.name = 'ImportFailedError';
  }
}

/** The file arrived whole but may not become a live database; nothing was kept. */
export class ImportRefusedError extends Error {
  constructor(
    readonly verdict: AdmissionVerdict,
    readonly check: InspectResult,
  ) {
    super(verdict.problems.join('; '));
    this.name = 'ImportRefusedError';
  }
}

export interface ReceivedFile {
  /** A temp file in the backups folder; the caller publishes or discards it. */
  tmp: string;
  size: number;
  sha256: string;
  /** The database sha256 the source promised (already held to it), if it promised one. */
  promisedSha256?: string;
}

export interface AdmittedFile extends ReceivedFile {
  check: InspectResult;
  /** `match` when the source promised the database's sha256 and kept it; `unknown` when it promised none. */
  checksum: Checksum;
  verdict: AdmissionVerdict;
}

const DEFAULT_STALL_MS = 30_000;

/**
 * The one way a file enters the backups folder from outside (upload, pull, disaster recovery, point in time):
 * source → temp file in the backups folder → size cap and sha256 against what the source promised → admission →
 * published under a never-overwriting name. Every failure removes the temp files and says why in one line.
 */
export class ImportPipeline {
  constructor(private readonly files: BackupFiles) {}

  /** Receives the source into a temp file, holding it to its size and hashes. */
  async receive(source: ImportSource): Promise<ReceivedFile> {
    await this.files.ensureDir();
    const stored = await this.files.createTemp();
    let plain: string | null = null;
    try {
      const storedFile = await this.copyIn(
        await openSource(source),
        fileSink(stored),
        source.maxStoredBytes,
        source.stallMs,
      );
      checkStored(storedFile, source);
      if (source.decrypt === undefined) {
        plain = stored;
        return checkPlain(stored, storedFile, source);
      }
      plain = await this.files.createTemp();
      // Destroyed whatever happens: a decrypter that gave up must not leave it opening a file that is gone.
      const storedStream = createReadStream(stored);
      storedStream.on('error', () => undefined);
      try {
        let decrypted: Readable;
        try {
          decrypted = await source.decrypt(storedStream);
        } catch (error) {
          throw new ImportFailedError('decrypt', 'It does not decrypt with the configured identity', error);
        }
        const plainFile = await this.copyIn(
          decrypted,
          fileSink(plain),
          Number.MAX_SAFE_INTEGER,
          source.stallMs,
          'decrypt',
        );
        return checkPlain(plain, plainFile, source);
      } finally {
        storedStream.destroy();
      }
    } catch (error) {
      await this.files.discardTemp(stored).catch(() => undefined);
      if (plain !== null && plain !== stored) {
        await this.files.discardTemp(plain).catch(() => undefined);
      }
      throw error;
    } finally {
      if (plain !== null && plain !== stored) {
        await this.files.discardTemp(stored).catch(() => undefined);
      }
    }
  }

  /**
   * A database built in place (a point in time rebuilt from the replica): `build` writes it into a temp file of the
   * backups folder, which is then made durable where it lies. A 1 GiB rebuild is then not copied in from a scratch
   * folder (a read, a write and its fsync), nor hashed here: the admission's inspection hashes the bytes it admits,
   * and that sha256 is the one kept.
   */
  async receiveBuilt<T>(build: (tmp: string) => Promise<T>): Promise<{ received: ReceivedFile; built: T }> {
    await this.files.ensureDir();
    const tmp = await this.files.createTemp();
    try {
      const built = await build(tmp);
      const handle = await open(tmp, 'r+');
      let size: number;
      try {
        await handle.sync();
        size = (await handle.stat()).size;
      } finally {
        await handle.close();
      }
      return { received: { tmp, size, sha256: '' }, built };
    } catch (error) {
      await this.files.discardTemp(tmp).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Reads the source's stored bytes once, held to their size cap and stored hash, and keeps nothing: what can be
   * checked of a copy without the identity to decrypt it.
   */
  async measureStored(source: ImportSource): Promise<{ size: number; sha256: string }> {
    const stored = await this.copyIn(await openSource(source), discardSink(), source.maxStoredBytes, source.stallMs);
    checkStored(stored, source);
    return stored;
  }

  /**
   * A full inspection of a received temp file and the admission rule. Refused: the temp file is removed and
   * ImportRefusedError says why. WAL-flagged files are made standalone first.
   */
  async admit(received: ReceivedFile, options: { livePageSize: number | null }): Promise<AdmittedFile> {
    try {
      const check = await this.files.inspectTemp(received.tmp, { integrity: 'full', hash: true, makeStandalone: true });
      const checksum = compareChecksum(received.promisedSha256, received.sha256);
      const verdict = admit({
        check,
        checksum,
        livePageSize: options.livePageSize,
      });
      if (verdict.problems.length > 0) {
        throw new ImportRefusedError(verdict, check);
      }
      return { ...received, size: check.size, sha256: check.sha256 ?? received.sha256, check, checksum, verdict };
    } catch (error) {
      await this.files.discardTemp(received.tmp).catch(() => undefined);
      throw error;
    }
  }

  /** Publishes under `name` exactly (a pulled copy keeps its name); false when that name is taken. */
  async publishAs(admitted: AdmittedFile, name: string): Promise<boolean> {
    const published = await this.files.publishTempAs(admitted.tmp, name);
    if (!published) {
      await this.files.discardTemp(admitted.tmp).catch(() => undefined);
    }
    return published;
  }

  /** Publishes under a fresh `<prefix>YYYY-MM-DD_HH-MM-SS.db` name, never overwriting. */
  publishNew(admitted: AdmittedFile, prefix: string, now: Date): Promise<string> {
    return this.files.publishTemp(admitted.tmp, prefix, now);
  }

  /** Size and mtime of a published file, for a later step to see that it is still the file that was admitted. */
  statPublished(name: string): Promise<{ size: number; mtimeMs: number } | null> {
    return this.files.statBackup(name);
  }

  /** A scratch copy of a received file, with the sha256 of what it wrote (see BackupFiles.copyBackupToScratch). */
  scratchCopyOf(file: ReceivedFile): Promise<ScratchCopy> {
    return this.files.copyBackupToScratch({ temp: file.tmp });
  }

  discardScratch(copy: ScratchCopy): Promise<void> {
    return this.files.discardTemp(copy.tmp);
  }

  discard(file: ReceivedFile): Promise<void> {
    return this.files.discardTemp(file.tmp);
  }

  private async copyIn(
    input: Readable,
    sink: Writable,
    maxBytes: number,
    stallMs = DEFAULT_STALL_MS,
    stage: 'source' | 'decrypt' = 'source',
  ): Promise<{ size: number; sha256: string }> {
    const hash = createHash('sha256');
    let size = 0;
    const timer: { handle?: NodeJS.Timeout } = {};
    const meter = new Transform({
      transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
        size += chunk.length;
        if (size > maxBytes) {
          callback(new ImportFailedError('too_large', `It is larger than promised (more than ${maxBytes} bytes)`));
          return;
        }
        hash.update(chunk);
        timer.handle?.refresh();
        callback(null, chunk);
      },
    });
    timer.handle = setTimeout(() => {
      meter.destroy(new ImportFailedError('stalled', `No data arrived for ${Math.round(stallMs / 1000)} s`));
    }, stallMs);
    try {
      await pipeline(input, meter, sink);
    } catch (error) {
      if (error instanceof ImportFailedError) {
        throw error;
      }
      if (stage === 'decrypt') {
        throw new ImportFailedError('decrypt', 'It does not decrypt: damaged, altered or not for this identity', error);
      }
      throw new ImportFailedError('source', 'The download failed before it was complete', error);
    } finally {
      clearTimeout(timer.handle);
    }
    return { size, sha256: hash.digest('hex') };
  }
}

async function openSource(source: ImportSource): Promise<Readable> {
  try {
    return await source.open();
  } catch (error) {
    if (error instanceof ImportFailedError) {
      throw error;
    }
    throw new ImportFailedError('source', 'The source could not be opened', error);
  }
}

/** The temp file was made by createTemp: written in place, flushed before the pipeline resolves. */
function fileSink(file: string): Writable {
  return createWriteStream(file, { flags: 'r+', flush: true });
}

function discardSink(): Writable {
  return new Writable({
    write(_chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
      callback();
    },
  });
}

function checkStored(stored: { sha256: string }, source: ImportSource): void {
  if (source.storedSha256 !== undefined && stored.sha256 !== source.storedSha256) {
    throw new ImportFailedError(
      'mismatch',
      'The stored object does not match its manifest (damaged or altered)',
      undefined,
      'stored_sha256',
    );
  }
}

function checkPlain(tmp: string, file: { size: number; sha256: string }, source: ImportSource): ReceivedFile {
  if (source.sha256 !== undefined && file.sha256 !== source.sha256) {
    throw new ImportFailedError(
      'mismatch',
      'The decrypted database does not match its manifest (sha256)',
      undefined,
      'sha256',
    );
  }
  return { tmp, size: file.size, sha256: file.sha256, promisedSha256: source.sha256 };
}
