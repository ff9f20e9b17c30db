import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { BACKGROUND_READ_BYTES, BACKGROUND_WRITE_BYTES } from '../common/io-chunk';
import { createScratchFile, openRegularFile } from './regular-file';

/**
 * A byte-for-byte copy of a closed database file of the backups folder into a new scratch file of the same folder,
 * hashing what it writes in the same pass. Not fsynced: a restore's scratch copy is thrown away after the
 * restore (or at the next start), and the copy-in's own commit makes the live database durable. Never the live
 * database: closing a raw descriptor of it would drop the locks SQLite holds (sqlite.org/howtocorrupt.html).
 */
export interface CopyJob {
  op: 'copy';
  source: string;
  dest: string;
}

export interface CopyResult {
  ok: true;
  /** Hex sha256 of the bytes written to `dest`. */
  sha256: string;
  size: number;
  ms: number;
}

/** Blocking: runs in the snapshot worker thread (`runCopyWorker` in snapshot.ts). */
export function copyWithSha256(job: CopyJob): CopyResult {
  const started = performance.now();
  const hash = createHash('sha256');
  const input = openRegularFile(job.source);
  try {
    const output = createScratchFile(job.dest);
    try {
      const buffer = Buffer.allocUnsafe(BACKGROUND_READ_BYTES);
      let size = 0;
      for (;;) {
        const n = fs.readSync(input, buffer, 0, buffer.length, null);
        if (n === 0) {
          break;
        }
        hash.update(buffer.subarray(0, n));
        let written = 0;
        while (written < n) {
          written += fs.writeSync(output, buffer, written, Math.min(n - written, BACKGROUND_WRITE_BYTES));
        }
        size += n;
      }
      return { ok: true, sha256: hash.digest('hex'), size, ms: performance.now() - started };
    } finally {
      fs.closeSync(output);
    }
  } finally {
    fs.closeSync(input);
  }
}
