import { Readable } from 'node:stream';
import { selectRemoteForPruning } from './bucket-retention';
import { compareEntries, entriesOf, FUTURE_SLACK_MS, manifestFits, maxObjectBytes } from './remote-catalog';
import { byteCap, cappedBody } from './stream-taps';

const NOW = Date.UTC(2026, 5, 1, 12, 0, 0);
const DAY = 24 * 60 * 60 * 1000;

function object(name: string, size = 5000, lastModifiedMs = NOW) {
  return { name, size, lastModifiedMs };
}

describe('the bucket catalog', () => {
  describe(entriesOf.name, () => {
    it('should order newest first with future names after every real one, and note missing manifests', () => {
      const entries = entriesOf(
        [
          object('mc-backup-2099-01-01_00-00-00.db.age', 4),
          object('mc-backup-2026-06-01_11-00-00.db.age'),
          object('mc-backup-2026-06-01_11-00-00.db.json', 300),
          object('mc-backup-2026-05-01_11-00-00.db.age'),
          object('mc-backup-2026-05-01_11-00-00.db.json', 300),
          object('mc-backup-2027-01-01_00-00-00.db.age'),
          object('mc-backup-2027-01-01_00-00-00.db.json', 300),
          object('notes.txt'),
        ],
        NOW,
      );
      expect(entries.map((e) => [e.name, e.hasManifest, e.future])).toEqual([
        ['mc-backup-2026-06-01_11-00-00.db', true, false],
        ['mc-backup-2026-05-01_11-00-00.db', true, false],
        ['mc-backup-2099-01-01_00-00-00.db', false, true],
        ['mc-backup-2027-01-01_00-00-00.db', true, true],
      ]);
      expect([...entries].sort(compareEntries)).toEqual(entries);
    });

    it('should not call a name a few minutes ahead (clock skew between machines) future', () => {
      const soon = new Date(NOW + FUTURE_SLACK_MS - 60_000).toISOString();
      const name = `mc-backup-${soon.slice(0, 10)}_${soon.slice(11, 19).replace(/:/g, '-')}.db.age`;
      expect(entriesOf([object(name)], NOW)[0].future).toBe(false);
    });
  });

  describe(manifestFits.name, () => {
    const entry = entriesOf([object('mc-backup-2026-06-01_11-00-00.db.age', 4)], NOW)[0];
    const manifest = {
      name: entry.name,
      size: 4096,
      sha256: 'a'.repeat(64),
      object_sha256: 'b'.repeat(64),
      encrypted: true,
      created_at: 0,
      kind: 'manual',
    };

    it('should refuse a manifest whose object could not hold the backup it describes', () => {
      expect(manifestFits(entry, manifest)).toBe(false);
      expect(manifestFits({ ...entry, objectSize: 4096 + 300 }, manifest)).toBe(true);
      expect(manifestFits({ ...entry, objectSize: maxObjectBytes(manifest) + 1 }, manifest)).toBe(false);
      expect(manifestFits({ ...entry, objectSize: 4096 + 300 }, { ...manifest, name: 'other.db' })).toBe(false);
      expect(manifestFits({ ...entry, objectSize: 4096 + 300 }, { ...manifest, encrypted: false })).toBe(false);
      expect(manifestFits(entry, null)).toBe(false);
    });
  });

  describe(selectRemoteForPruning.name, () => {
    const entries = entriesOf(
      [
        object('mc-backup-2099-01-01_00-00-00.db.age'),
        object('mc-backup-2026-06-01_11-00-00.db.age'),
        object('mc-backup-2026-05-30_11-00-00.db.age'),
        object('mc-backup-2026-05-01_11-00-00.db.age'),
      ],
      NOW,
    );

    it('should prune a future name first by count, and never the copy it is told to keep', () => {
      const rule = { count: 2, maxAgeDays: 0, nowMs: NOW };
      expect(selectRemoteForPruning(entries, rule).map((e) => e.name)).toEqual([
        'mc-backup-2026-05-01_11-00-00.db',
        'mc-backup-2099-01-01_00-00-00.db',
      ]);
      const keep = 'mc-backup-2099-01-01_00-00-00.db';
      expect(selectRemoteForPruning(entries, { ...rule, keep }).map((e) => e.name)).not.toContain(keep);
    });

    it('should prune by age but never the newest, nor a future name by age', () => {
      const doomed = selectRemoteForPruning(entries, { count: 100, maxAgeDays: 1, nowMs: NOW + 40 * DAY });
      expect(doomed.map((e) => e.name)).toEqual([
        'mc-backup-2026-05-30_11-00-00.db',
        'mc-backup-2026-05-01_11-00-00.db',
      ]);
    });
  });

  describe('byte caps', () => {
    /** A source of `total` bytes in 64 KiB chunks that counts what was read from it. */
    function source(total: number): { stream: Readable; read: () => number } {
      let sent = 0;
      const stream = new Readable({
        read() {
          if (sent >= total) {
            this.push(null);
            return;
          }
          const chunk = Buffer.alloc(Math.min(65536, total - sent));
          sent += chunk.length;
          this.push(chunk);
        },
      });
      return { stream, read: () => sent };
    }

    it('should fail the stream as soon as more than the limit arrives, without reading the rest', async () => {
      const src = source(100 * 1024 * 1024);
      const cap = byteCap(1024 * 1024);
      src.stream.pipe(cap.stream);
      await expect(cap.stream.toArray()).rejects.toMatchObject({ code: 'OBJECT_TOO_LARGE' });
      src.stream.destroy();
      expect(cap.exceeded()).toBe(true);
      expect(src.read()).toBeLessThan(4 * 1024 * 1024);
    });

    it('should refuse by Content-Length before reading a byte, and pass an object within the limit', async () => {
      const big = source(10_000);
      expect(() => cappedBody({ body: big.stream, contentLength: 10_000 }, 9_999)).toThrow('OBJECT_TOO_LARGE');
      expect(big.stream.destroyed).toBe(true);
      const fits = cappedBody({ body: source(10_000).stream, contentLength: null }, 10_000);
      expect(Buffer.concat(await fits.body.toArray())).toHaveLength(10_000);
      expect(fits.exceeded()).toBe(false);
    });
  });
});
