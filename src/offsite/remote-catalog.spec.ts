import { selectRemoteForPruning } from './bucket-retention';
import { compareEntries, entriesOf, FUTURE_SLACK_MS, manifestFits, maxObjectBytes } from './remote-catalog';

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
});
