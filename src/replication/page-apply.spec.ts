import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { applyFrames, decodePageSet, PageSet, ScratchFilePages } from './page-apply';
import { FRAME_HEADER_SIZE } from './wal-reader';

const PAGE = 512;

/** A commit: the pages it writes (in order, repeats allowed) and the size it leaves. */
interface Commit {
  writes: number[];
  size: number;
}

function framesOf(commits: Commit[], fill: (commit: number, write: number) => number): Buffer {
  const frames: Buffer[] = [];
  commits.forEach((commit, c) => {
    commit.writes.forEach((pgno, w) => {
      const frame = Buffer.alloc(FRAME_HEADER_SIZE + PAGE, fill(c, w));
      frame.writeUInt32BE(pgno, 0);
      frame.writeUInt32BE(w === commit.writes.length - 1 ? commit.size : 0, 4);
      frames.push(frame);
    });
  });
  return Buffer.concat(frames);
}

const commitArb = fc
  .record({
    writes: fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 6 }),
    size: fc.integer({ min: 1, max: 12 }),
  })
  .map((c) => ({ ...c, size: Math.max(c.size, ...c.writes.slice(-1)) }));

describe('page-apply', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mc-pages-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function baseFile(name: string, pages: number): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, Buffer.concat(Array.from({ length: pages }, (_, i) => Buffer.alloc(PAGE, 200 + i))));
    return file;
  }

  it('should leave the same file from a compacted range as from its frames one by one (shrinks and regrowth included)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 }),
        fc.array(commitArb, { minLength: 1, maxLength: 8 }),
        fc.array(commitArb, { minLength: 0, maxLength: 8 }),
        (basePages, before, range) => {
          const frames = [
            framesOf(before, (c, w) => (c * 7 + w) % 97),
            framesOf(range, (c, w) => 100 + ((c * 5 + w) % 97)),
          ];
          const oneByOne = baseFile(`a-${basePages}`, basePages);
          const compacted = baseFile(`b-${basePages}`, basePages);
          const a = new ScratchFilePages(oneByOne, PAGE);
          applyFrames(a, frames[0], PAGE);
          applyFrames(a, frames[1], PAGE);
          a.close();
          const b = new ScratchFilePages(compacted, PAGE);
          applyFrames(b, frames[0], PAGE);
          if (range.length > 0) {
            const set = new PageSet(PAGE);
            applyFrames(set, frames[1], PAGE);
            b.applyPageSet(decodePageSet(set.encode()));
          }
          b.close();
          expect(fs.readFileSync(compacted).equals(fs.readFileSync(oneByOne))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('should zero a page that a shrink dropped and a later commit brought back without writing it', () => {
    const file = baseFile('z', 4);
    const set = new PageSet(PAGE);
    // Shrink to 2 pages, then grow to 4 writing only page 4: page 3 must read as zeros, not as the base's page 3.
    applyFrames(
      set,
      framesOf(
        [
          { writes: [1], size: 2 },
          { writes: [4], size: 4 },
        ],
        () => 9,
      ),
      PAGE,
    );
    const pages = new ScratchFilePages(file, PAGE);
    pages.applyPageSet(decodePageSet(set.encode()));
    pages.close();
    const after = fs.readFileSync(file);
    expect(after.length).toBe(4 * PAGE);
    expect(after.subarray(2 * PAGE, 3 * PAGE).equals(Buffer.alloc(PAGE))).toBe(true);
    expect(after[PAGE]).toBe(201);
    expect(after[3 * PAGE]).toBe(9);
  });

  it('should refuse a page set that is not one', () => {
    expect(() => decodePageSet(Buffer.from('MCPAGES1 but not really a page set'))).toThrow(
      'A page set of the wrong length',
    );
    expect(() => decodePageSet(Buffer.alloc(64))).toThrow('Not a page set');
  });
});
