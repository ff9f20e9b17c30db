import * as fs from 'node:fs';
import { FRAME_HEADER_SIZE } from './wal-reader';

/**
 * Committed WAL frames applied as pages: each frame's page written at its place, and at each commit the database
 * cut or grown to the size that commit records, exactly as SQLite's own checkpoint would leave the file. Used
 * only on a rebuild's private scratch file (never a live database, never while SQLite has it open) and to build
 * page sets (compacted ranges). The frames were already proven by SQLite's checksums and salts (scanFrames).
 */
export interface PageSink {
  writePage(pgno: number, page: Buffer): void;
  /** A commit left the database at `pages` pages. */
  setSize(pages: number): void;
}

/** Applies every frame in `frames` (whole frames, no WAL header, ending at a commit); returns the frame count. */
export function applyFrames(sink: PageSink, frames: Buffer, pageSize: number): number {
  const frameSize = FRAME_HEADER_SIZE + pageSize;
  if (frames.length % frameSize !== 0) {
    throw new Error('A WAL segment holds a partial frame');
  }
  let count = 0;
  for (let offset = 0; offset < frames.length; offset += frameSize) {
    const pgno = frames.readUInt32BE(offset);
    const commitPages = frames.readUInt32BE(offset + 4);
    sink.writePage(pgno, frames.subarray(offset + FRAME_HEADER_SIZE, offset + frameSize));
    if (commitPages !== 0) {
      sink.setSize(commitPages);
    }
    count++;
  }
  return count;
}

/** The scratch database file as a page sink. */
export class ScratchFilePages implements PageSink {
  private readonly fd: number;
  private pages: number;

  constructor(
    file: string,
    private readonly pageSize: number,
  ) {
    this.fd = fs.openSync(file, 'r+');
    this.pages = Math.ceil(fs.fstatSync(this.fd).size / pageSize);
  }

  writePage(pgno: number, page: Buffer): void {
    fs.writeSync(this.fd, page, 0, page.length, (pgno - 1) * this.pageSize);
    this.pages = Math.max(this.pages, pgno);
  }

  setSize(pages: number): void {
    if (pages !== this.pages) {
      fs.ftruncateSync(this.fd, pages * this.pageSize);
      this.pages = pages;
    }
  }

  /** A page set (see PageSet.encode) on top of what the file holds. */
  applyPageSet(set: DecodedPageSet): void {
    if (set.pageSize !== this.pageSize) {
      throw new Error(`A page set of ${set.pageSize}-byte pages cannot apply to ${this.pageSize}-byte pages`);
    }
    // Pages past the smallest size the range reached were gone then: any the range did not write again are zeros.
    if (set.minPages < this.pages) {
      this.setSize(set.minPages);
    }
    for (const [pgno, page] of set.pages) {
      this.writePage(pgno, page);
    }
    this.setSize(set.finalPages);
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

const MAGIC = Buffer.from('MCPAGES1', 'latin1');
const HEADER_SIZE = MAGIC.length + 16;

export interface DecodedPageSet {
  pageSize: number;
  /** The database's size after the range's last commit, in pages. */
  finalPages: number;
  /** The smallest size any commit in the range left. */
  minPages: number;
  /** The last version of every page the range wrote that still exists after it, by page number. */
  pages: Map<number, Buffer>;
}

/**
 * The net effect of a run of segments: the last version of each page, and the sizes. Applied to the state before
 * the run, it gives exactly the state after it (not the moments inside it: those need the segments themselves).
 */
export class PageSet implements PageSink {
  private readonly pages = new Map<number, Buffer>();
  private finalPages = 0;
  private minPages = Number.MAX_SAFE_INTEGER;
  private highestPage = 0;

  constructor(readonly pageSize: number) {}

  /** Pages held. */
  get count(): number {
    return this.pages.size;
  }

  writePage(pgno: number, page: Buffer): void {
    this.pages.set(pgno, Buffer.from(page));
    this.highestPage = Math.max(this.highestPage, pgno);
  }

  setSize(pages: number): void {
    if (pages < this.highestPage) {
      for (const pgno of this.pages.keys()) {
        if (pgno > pages) {
          this.pages.delete(pgno);
        }
      }
      this.highestPage = pages;
    }
    this.finalPages = pages;
    this.minPages = Math.min(this.minPages, pages);
  }

  /** `MCPAGES1`, then page size, final and smallest size, page count (u32 big-endian), then (page number, page). */
  encode(): Buffer {
    if (this.finalPages === 0) {
      throw new Error('A page set needs at least one commit');
    }
    const numbers = [...this.pages.keys()].sort((a, b) => a - b);
    const out = Buffer.alloc(HEADER_SIZE + numbers.length * (4 + this.pageSize));
    MAGIC.copy(out, 0);
    out.writeUInt32BE(this.pageSize, 8);
    out.writeUInt32BE(this.finalPages, 12);
    out.writeUInt32BE(this.minPages, 16);
    out.writeUInt32BE(numbers.length, 20);
    let offset = HEADER_SIZE;
    for (const pgno of numbers) {
      out.writeUInt32BE(pgno, offset);
      (this.pages.get(pgno) as Buffer).copy(out, offset + 4);
      offset += 4 + this.pageSize;
    }
    return out;
  }
}

/** The inverse of PageSet.encode; throws on anything malformed. */
export function decodePageSet(data: Buffer): DecodedPageSet {
  if (data.length < HEADER_SIZE || !data.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new Error('Not a page set');
  }
  const pageSize = data.readUInt32BE(8);
  const finalPages = data.readUInt32BE(12);
  const minPages = data.readUInt32BE(16);
  const count = data.readUInt32BE(20);
  if (pageSize < 512 || pageSize > 65536 || data.length !== HEADER_SIZE + count * (4 + pageSize)) {
    throw new Error('A page set of the wrong length');
  }
  const pages = new Map<number, Buffer>();
  for (let i = 0, offset = HEADER_SIZE; i < count; i++, offset += 4 + pageSize) {
    const pgno = data.readUInt32BE(offset);
    if (pgno < 1 || pgno > finalPages) {
      throw new Error('A page set with a page outside the database');
    }
    pages.set(pgno, data.subarray(offset + 4, offset + 4 + pageSize));
  }
  return { pageSize, finalPages, minPages, pages };
}
