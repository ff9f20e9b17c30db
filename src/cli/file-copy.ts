import { createHash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import * as fsp from 'node:fs/promises';

const CHUNK_BYTES = 4 * 1024 * 1024;

export interface CopyResult {
  size: number;
  sha256: string;
}

/**
 * Copies `source` into the existing empty file `dest` in chunks, hashing what it writes and reporting progress,
 * then fsyncs `dest`. The hash lets the caller prove the copy holds the exact bytes it verified earlier.
 */
export async function copyFileHashed(
  source: string,
  dest: string,
  onProgress: (done: number, total: number) => void = () => undefined,
): Promise<CopyResult> {
  // Never blocking (a FIFO in place of the backup would hang here), never through a symlink, regular files only.
  const input = await fsp.open(source, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOFOLLOW);
  try {
    if (!(await input.stat()).isFile()) {
      throw new Error('The backup is not a regular file');
    }
    const output = await fsp.open(dest, 'r+');
    try {
      const total = (await input.stat()).size;
      const hash = createHash('sha256');
      const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
      let done = 0;
      for (;;) {
        const { bytesRead } = await input.read(buffer, 0, CHUNK_BYTES, done);
        if (bytesRead === 0) {
          break;
        }
        const chunk = buffer.subarray(0, bytesRead);
        hash.update(chunk);
        let written = 0;
        while (written < bytesRead) {
          const result = await output.write(chunk, written, bytesRead - written, done + written);
          written += result.bytesWritten;
        }
        done += bytesRead;
        onProgress(done, total);
      }
      await output.truncate(done);
      await output.sync();
      return { size: done, sha256: hash.digest('hex') };
    } finally {
      await output.close();
    }
  } finally {
    await input.close();
  }
}

export async function fsyncFile(file: string): Promise<void> {
  const handle = await fsp.open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes a rename or unlink in `dir` durable; tolerates filesystems that cannot fsync a folder. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code !== 'EINVAL' && code !== 'EISDIR') {
      throw err;
    }
  } finally {
    await handle.close();
  }
}

/** Unlinks `file` if it is there. Returns whether something was removed. */
export async function removeIfPresent(file: string): Promise<boolean> {
  try {
    await fsp.unlink(file);
    return true;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') {
      return false;
    }
    throw err;
  }
}

/** The files SQLite keeps beside a database; any of them left over could be replayed onto a different file. */
export function sqliteSidecars(dbPath: string): string[] {
  return ['-wal', '-shm', '-journal'].map((suffix) => `${dbPath}${suffix}`);
}
