import * as fs from 'node:fs';
import { BACKGROUND_READ_BYTES } from '../common/io-chunk';

/**
 * Reads a SQLite WAL file (sqlite.org/fileformat2.html §4) the way Litestream v0.3 does: from a pinned position,
 * frame by frame, trusting a frame only when its salts match the WAL header and SQLite's cumulative checksum chain
 * holds up to it, and handing out only whole transactions (up to the last valid commit frame). Pure: no Nest, no
 * SQLite connection. The -wal file carries no POSIX locks, so reading it through a descriptor of our own cannot
 * drop a lock SQLite holds (the main database, its -shm and -journal are never opened here).
 */

export const WAL_HEADER_SIZE = 32;
export const FRAME_HEADER_SIZE = 24;
const MAGIC_LE = 0x377f0682;
const MAGIC_BE = 0x377f0683;
const WAL_VERSION = 3007000;

export interface WalHeader {
  /** Checksums are computed on big-endian words (magic 0x377f0683) or little-endian ones (0x377f0682). */
  bigEndian: boolean;
  pageSize: number;
  checkpointSeq: number;
  salt1: number;
  salt2: number;
  checksum1: number;
  checksum2: number;
  /** The 32 header bytes as they are in the file. */
  bytes: Buffer;
}

/** Where a reader stands in one WAL cycle (one pair of salts): the next byte to read and the checksum so far. */
export interface WalPosition {
  salt1: number;
  salt2: number;
  checkpointSeq: number;
  pageSize: number;
  bigEndian: boolean;
  /** Byte offset of the next frame (32 at the start of a cycle). */
  offset: number;
  checksum1: number;
  checksum2: number;
  /** Hex of the cycle's 32-byte header, so a rebuild can write a WAL file of this cycle. */
  header: string;
}

export interface WalCommit {
  /** Byte offset just past the commit frame. */
  end: number;
  /** Database size in pages after this commit. */
  dbPages: number;
}

export interface WalRead {
  /** The bytes of every frame from the start position up to the last valid commit frame (may be empty). */
  frames: Buffer;
  /** One entry per commit frame inside `frames`, in order. */
  commits: WalCommit[];
  /** Where the next read starts: just past the last commit frame (the start position when nothing was new). */
  next: WalPosition;
}

/**
 * SQLite's WAL checksum (walChecksumBytes): over 8-byte pairs of 32-bit words, seeded with the previous checksum.
 * `data.length` must be a multiple of 8.
 */
export function walChecksum(
  data: Buffer,
  bigEndian: boolean,
  seed1: number,
  seed2: number,
  start = 0,
  end = data.length,
): [number, number] {
  let s1 = seed1 >>> 0;
  let s2 = seed2 >>> 0;
  if (bigEndian) {
    for (let i = start; i < end; i += 8) {
      s1 = (s1 + data.readUInt32BE(i) + s2) >>> 0;
      s2 = (s2 + data.readUInt32BE(i + 4) + s1) >>> 0;
    }
  } else {
    for (let i = start; i < end; i += 8) {
      s1 = (s1 + data.readUInt32LE(i) + s2) >>> 0;
      s2 = (s2 + data.readUInt32LE(i + 4) + s1) >>> 0;
    }
  }
  return [s1, s2];
}

/** The header of a WAL file, or null when the bytes are not a valid one (too short, bad magic or checksum). */
export function parseWalHeader(bytes: Buffer): WalHeader | null {
  if (bytes.length < WAL_HEADER_SIZE) {
    return null;
  }
  const magic = bytes.readUInt32BE(0);
  if (magic !== MAGIC_LE && magic !== MAGIC_BE) {
    return null;
  }
  if (bytes.readUInt32BE(4) !== WAL_VERSION) {
    return null;
  }
  const bigEndian = magic === MAGIC_BE;
  const pageSize = bytes.readUInt32BE(8);
  // A page size is a power of two between 512 and 65536 (65536 is stored as 1 in the database header only).
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
    return null;
  }
  const [c1, c2] = walChecksum(bytes, bigEndian, 0, 0, 0, 24);
  if (c1 !== bytes.readUInt32BE(24) || c2 !== bytes.readUInt32BE(28)) {
    return null;
  }
  return {
    bigEndian,
    pageSize,
    checkpointSeq: bytes.readUInt32BE(12),
    salt1: bytes.readUInt32BE(16),
    salt2: bytes.readUInt32BE(20),
    checksum1: c1,
    checksum2: c2,
    bytes: Buffer.from(bytes.subarray(0, WAL_HEADER_SIZE)),
  };
}

/** The position at the start of a cycle: the first frame is chained to the header's checksum. */
export function startOfCycle(header: WalHeader): WalPosition {
  return {
    salt1: header.salt1,
    salt2: header.salt2,
    checkpointSeq: header.checkpointSeq,
    pageSize: header.pageSize,
    bigEndian: header.bigEndian,
    offset: WAL_HEADER_SIZE,
    checksum1: header.checksum1,
    checksum2: header.checksum2,
    header: header.bytes.toString('hex'),
  };
}

export function sameCycle(a: Pick<WalPosition, 'salt1' | 'salt2'>, b: Pick<WalPosition, 'salt1' | 'salt2'>): boolean {
  return a.salt1 === b.salt1 && a.salt2 === b.salt2;
}

/**
 * The whole committed frames in `data` (bytes of the WAL starting at `from.offset`), validated against `from`:
 * each frame's salts must be the cycle's and its checksums must continue the chain. Stops at the first frame that
 * fails (a torn write, a frame of an older cycle, the end of the data) and drops the frames after the last commit.
 */
export function scanFrames(data: Buffer, from: WalPosition): WalRead {
  const frameSize = FRAME_HEADER_SIZE + from.pageSize;
  const commits: WalCommit[] = [];
  let s1 = from.checksum1;
  let s2 = from.checksum2;
  let committedBytes = 0;
  let committed: [number, number] = [s1, s2];
  for (let at = 0; at + frameSize <= data.length; at += frameSize) {
    if (data.readUInt32BE(at + 8) !== from.salt1 || data.readUInt32BE(at + 12) !== from.salt2) {
      break;
    }
    if (data.readUInt32BE(at) === 0) {
      break;
    }
    [s1, s2] = walChecksum(data, from.bigEndian, s1, s2, at, at + 8);
    [s1, s2] = walChecksum(data, from.bigEndian, s1, s2, at + FRAME_HEADER_SIZE, at + frameSize);
    if (s1 !== data.readUInt32BE(at + 16) || s2 !== data.readUInt32BE(at + 20)) {
      break;
    }
    const dbPages = data.readUInt32BE(at + 4);
    if (dbPages !== 0) {
      committedBytes = at + frameSize;
      committed = [s1, s2];
      commits.push({ end: from.offset + committedBytes, dbPages });
    }
  }
  return {
    frames: data.subarray(0, committedBytes),
    commits,
    next: { ...from, offset: from.offset + committedBytes, checksum1: committed[0], checksum2: committed[1] },
  };
}

export type WalFileState =
  /** No -wal file, or one shorter than a header: SQLite writes a fresh header with the next commit. */
  | { kind: 'empty' }
  /** A header that does not parse: a WAL being rewritten, or damage. */
  | { kind: 'invalid' }
  | { kind: 'ok'; header: WalHeader; size: number };

/**
 * Reads a WAL file through a read-only descriptor of its own. Opened per call and closed before returning: no
 * descriptor of the WAL stays open between reads.
 */
export class WalFile {
  constructor(readonly path: string) {}

  /** The header and the file size. */
  state(): WalFileState {
    return this.withFd((fd) => {
      if (fd === null) {
        return { kind: 'empty' };
      }
      const size = fs.fstatSync(fd).size;
      if (size < WAL_HEADER_SIZE) {
        return { kind: 'empty' };
      }
      const bytes = Buffer.alloc(WAL_HEADER_SIZE);
      fs.readSync(fd, bytes, 0, WAL_HEADER_SIZE, 0);
      const header = parseWalHeader(bytes);
      return header ? { kind: 'ok', header, size } : { kind: 'invalid' };
    });
  }

  /**
   * The committed frames after `from`, at most about `maxBytes` of them (the rest waits for the next call). Returns
   * null when the file's header is no longer `from`'s cycle (the WAL was restarted, truncated or replaced).
   */
  readFrom(from: WalPosition, maxBytes = 64 * 1024 * 1024): WalRead | null {
    return this.withFd((fd) => {
      if (fd === null) {
        return null;
      }
      const size = fs.fstatSync(fd).size;
      if (size < WAL_HEADER_SIZE) {
        return null;
      }
      const headerBytes = Buffer.alloc(WAL_HEADER_SIZE);
      fs.readSync(fd, headerBytes, 0, WAL_HEADER_SIZE, 0);
      const header = parseWalHeader(headerBytes);
      if (header === null || !sameCycle(header, from) || header.pageSize !== from.pageSize) {
        return null;
      }
      const frameSize = FRAME_HEADER_SIZE + from.pageSize;
      const available = Math.max(0, size - from.offset);
      const frames = Math.min(Math.floor(available / frameSize), Math.max(1, Math.floor(maxBytes / frameSize)));
      const data = Buffer.alloc(frames * frameSize);
      let read = 0;
      while (read < data.length) {
        const n = fs.readSync(fd, data, read, Math.min(data.length - read, BACKGROUND_READ_BYTES), from.offset + read);
        if (n === 0) {
          break;
        }
        read += n;
      }
      return scanFrames(data.subarray(0, read - (read % frameSize)), from);
    });
  }

  /** The file's size (0 when absent), from a stat of the path. */
  size(): number {
    try {
      return fs.statSync(this.path).size;
    } catch {
      return 0;
    }
  }

  /** Size and modification time, from a stat of the path (no descriptor): changes whenever SQLite writes it. */
  stamp(): string {
    try {
      const stat = fs.statSync(this.path);
      return `${stat.size}:${stat.mtimeMs}`;
    } catch {
      return 'none';
    }
  }

  /**
   * True when a frame of `from`'s cycle follows `from` (committed or not): a transaction may be under way or
   * committed there. Reads one frame, so a long stale tail of an earlier cycle costs nothing.
   */
  frameAfter(from: WalPosition): boolean {
    return this.withFd((fd) => {
      if (fd === null) {
        return false;
      }
      const data = Buffer.alloc(FRAME_HEADER_SIZE + from.pageSize);
      const n = fs.readSync(fd, data, 0, data.length, from.offset);
      if (n < data.length || data.readUInt32BE(8) !== from.salt1 || data.readUInt32BE(12) !== from.salt2) {
        return false;
      }
      const [s1, s2] = walChecksum(data, from.bigEndian, from.checksum1, from.checksum2, 0, 8);
      const [c1, c2] = walChecksum(data, from.bigEndian, s1, s2, FRAME_HEADER_SIZE, data.length);
      return c1 === data.readUInt32BE(16) && c2 === data.readUInt32BE(20);
    });
  }

  /**
   * True when `position` still describes this file: same cycle, long enough, and the frame just before it ends
   * with the saved running checksum (a process killed mid-stream left the WAL as it was).
   */
  stillAt(position: WalPosition): boolean {
    return this.withFd((fd) => {
      if (fd === null) {
        return false;
      }
      const size = fs.fstatSync(fd).size;
      const headerBytes = Buffer.alloc(WAL_HEADER_SIZE);
      fs.readSync(fd, headerBytes, 0, WAL_HEADER_SIZE, 0);
      const header = parseWalHeader(headerBytes);
      if (header === null || !sameCycle(header, position) || size < position.offset) {
        return false;
      }
      if (position.offset === WAL_HEADER_SIZE) {
        return header.checksum1 === position.checksum1 && header.checksum2 === position.checksum2;
      }
      // The last frame's header holds the running checksum up to and including that frame (bytes 16-23).
      const tail = Buffer.alloc(8);
      fs.readSync(fd, tail, 0, 8, position.offset - FRAME_HEADER_SIZE - position.pageSize + 16);
      return tail.readUInt32BE(0) === position.checksum1 && tail.readUInt32BE(4) === position.checksum2;
    });
  }

  private withFd<T>(use: (fd: number | null) => T): T {
    let fd: number;
    try {
      fd = fs.openSync(this.path, fs.constants.O_RDONLY);
    } catch (error) {
      if ((error as { code?: unknown }).code === 'ENOENT') {
        return use(null);
      }
      throw error;
    }
    try {
      return use(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
}
