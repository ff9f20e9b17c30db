import { BACKUP_PREFIX, formatBackupName, parseBackupName, SAFETY_PREFIX, UPLOAD_PREFIX } from './backup-name';
import { FUTURE_NAME_TOLERANCE_MS, planRetention, type RetentionCandidate, selectForPruning } from './retention';

const DAY = 24 * 60 * 60 * 1000;
const NOW = Date.UTC(2026, 5, 15, 12, 0, 0);

/** A candidate as BackupFiles.list() builds it: time and seq read from the name. */
function file(name: string): RetentionCandidate {
  const parsed = parseBackupName(name);
  if (!parsed) {
    throw new Error(`not one of our names: ${name}`);
  }
  return { name, createdAtMs: parsed.createdAtMs, seq: parsed.seq };
}

/** `mc-backup-…` for a moment `daysAgo` days (and `seconds` seconds) before NOW. */
function backup(daysAgo: number, seq = 1, prefix = BACKUP_PREFIX, seconds = 0): RetentionCandidate {
  return file(formatBackupName(prefix, new Date(NOW - daysAgo * DAY - seconds * 1000), seq));
}

const names = (files: readonly RetentionCandidate[]): string[] => files.map((f) => f.name).sort();

/** Deterministic shuffles, so no test depends on the order the folder happens to list. */
const orders = <T>(items: readonly T[]): T[][] => [
  [...items],
  [...items].reverse(),
  [...items.filter((_, i) => i % 2 === 1), ...items.filter((_, i) => i % 2 === 0)],
  [...items.slice(Math.floor(items.length / 2)), ...items.slice(0, Math.floor(items.length / 2))],
];

describe(selectForPruning.name, () => {
  describe('count rule', () => {
    // Newest first: d0 is the newest.
    const d = [0, 1, 2, 3, 4, 5].map((daysAgo) => backup(daysAgo));

    it.each(orders(d).map((order, i) => [i, order] as const))(
      'prunes the oldest by the time in the name, whatever the input order (order %i)',
      (_i, input) => {
        const doomed = selectForPruning(input, { count: 3, maxAgeDays: 0, nowMs: NOW });
        expect(names(doomed)).toEqual(names([d[3], d[4], d[5]]));
      },
    );

    it('orders by the name time, not by any other field (an mtime-like field is ignored)', () => {
      // Extra fields such as mtimeMs (set by a copy or restore) must not influence the choice.
      const withMtime = d.map((f, i) => ({ ...f, mtimeMs: NOW - (d.length - i) * DAY }));
      const doomed = selectForPruning(withMtime, { count: 2, maxAgeDays: 0, nowMs: NOW });
      expect(names(doomed)).toEqual(names([d[2], d[3], d[4], d[5]]));
    });

    it.each([
      [1, 5],
      [2, 4],
      [5, 1],
      [6, 0],
      [7, 0],
      [1000, 0],
    ])('with count %i of 6 prunes %i', (count, expected) => {
      const doomed = selectForPruning(d, { count, maxAgeDays: 0, nowMs: NOW });
      expect(doomed).toHaveLength(expected);
      // Always the oldest ones.
      expect(names(doomed)).toEqual(names(d.slice(d.length - expected)));
    });

    it('returns nothing for no files', () => {
      expect(selectForPruning([], { count: 1, maxAgeDays: 1, nowMs: NOW })).toEqual([]);
    });

    it('neither reorders nor changes its input, and returns the same objects', () => {
      const input = [d[4], d[0], d[2], d[5], d[1], d[3]];
      const copy = input.map((f) => ({ ...f }));
      const doomed = selectForPruning(input, { count: 2, maxAgeDays: 0, nowMs: NOW });
      expect(input).toEqual(copy);
      expect(input[0]).toBe(d[4]);
      for (const f of doomed) {
        expect(input).toContain(f);
      }
    });
  });

  describe('sequence suffix within one second', () => {
    const at = new Date(NOW - DAY);
    const s1 = file(formatBackupName(BACKUP_PREFIX, at, 1));
    const s2 = file(formatBackupName(BACKUP_PREFIX, at, 2));
    const s3 = file(formatBackupName(BACKUP_PREFIX, at, 3));
    const s10 = file(formatBackupName(BACKUP_PREFIX, at, 10));
    const later = file(formatBackupName(BACKUP_PREFIX, new Date(at.getTime() + 1000), 1));

    it('treats a higher seq as newer within the same second', () => {
      for (const input of orders([s1, s2, s3])) {
        expect(names(selectForPruning(input, { count: 1, maxAgeDays: 0, nowMs: NOW }))).toEqual(names([s1, s2]));
        expect(names(selectForPruning(input, { count: 2, maxAgeDays: 0, nowMs: NOW }))).toEqual(names([s1]));
      }
    });

    it('compares seq numerically (-10 is newer than -2, although "-10" < "-2" as text)', () => {
      for (const input of orders([s2, s10, s3])) {
        expect(names(selectForPruning(input, { count: 1, maxAgeDays: 0, nowMs: NOW }))).toEqual(names([s2, s3]));
      }
    });

    it('ranks any seq of an earlier second below a later second', () => {
      for (const input of orders([s10, later, s1])) {
        expect(names(selectForPruning(input, { count: 1, maxAgeDays: 0, nowMs: NOW }))).toEqual(names([s1, s10]));
      }
    });
  });

  describe('candidates', () => {
    const newest = backup(0);
    const oldest = backup(400);
    const upload = backup(500, 1, UPLOAD_PREFIX);
    const safety = backup(600, 1, SAFETY_PREFIX);
    const uploadSeq = backup(700, 2, UPLOAD_PREFIX);
    // Not ours: listed with its mtime as the time, which here is the oldest of all.
    const other: RetentionCandidate = { name: 'other.db', createdAtMs: NOW - 1000 * DAY, seq: 1 };
    const similar: RetentionCandidate = { name: 'mc-backupX2020-01-01_00-00-00.db', createdAtMs: 0, seq: 1 };
    const all = [newest, upload, other, oldest, safety, uploadSeq, similar];

    it('only ever selects mc-backup- files, under the count rule', () => {
      const doomed = selectForPruning(all, { count: 1, maxAgeDays: 0, nowMs: NOW });
      expect(names(doomed)).toEqual([oldest.name]);
    });

    it('only ever selects mc-backup- files, under the age rule', () => {
      const doomed = selectForPruning(all, { count: 1000, maxAgeDays: 1, nowMs: NOW });
      expect(names(doomed)).toEqual([oldest.name]);
    });

    it('does not count uploads, safety copies or other files towards the kept number', () => {
      const b = [backup(1), backup(2), backup(3)];
      const doomed = selectForPruning([backup(0, 1, UPLOAD_PREFIX), backup(0, 1, SAFETY_PREFIX), other, ...b], {
        count: 3,
        maxAgeDays: 0,
        nowMs: NOW,
      });
      expect(doomed).toEqual([]);
    });

    it('selects nothing when there are no mc-backup- files at all', () => {
      expect(selectForPruning([upload, safety, uploadSeq, other], { count: 1, maxAgeDays: 1, nowMs: NOW })).toEqual([]);
    });
  });

  describe('age rule', () => {
    it('prunes backups older than maxAgeDays and keeps younger ones', () => {
      const young = [backup(0), backup(1), backup(6)];
      const old = [backup(8), backup(30)];
      for (const input of orders([...young, ...old])) {
        expect(names(selectForPruning(input, { count: 1000, maxAgeDays: 7, nowMs: NOW }))).toEqual(names(old));
      }
    });

    it('keeps a backup exactly maxAgeDays old and prunes one a second older', () => {
      const newest = backup(0);
      const exact = backup(7);
      const older = backup(7, 1, BACKUP_PREFIX, 1);
      const doomed = selectForPruning([older, exact, newest], { count: 1000, maxAgeDays: 7, nowMs: NOW });
      expect(names(doomed)).toEqual([older.name]);
    });

    it('never prunes the newest backup, however old', () => {
      const b = [backup(100), backup(200), backup(300)];
      for (const input of orders(b)) {
        expect(names(selectForPruning(input, { count: 1000, maxAgeDays: 1, nowMs: NOW }))).toEqual(names([b[1], b[2]]));
      }
      expect(selectForPruning([backup(1000)], { count: 1000, maxAgeDays: 1, nowMs: NOW })).toEqual([]);
    });

    it('keeps the newest mc-backup- even when a newer upload or safety copy exists', () => {
      const upload = backup(0, 1, UPLOAD_PREFIX);
      const old = backup(50);
      expect(selectForPruning([upload, old], { count: 1000, maxAgeDays: 1, nowMs: NOW })).toEqual([]);
    });

    it('is off at maxAgeDays 0', () => {
      const b = [backup(0), backup(1000), backup(3000)];
      expect(selectForPruning(b, { count: 1000, maxAgeDays: 0, nowMs: NOW })).toEqual([]);
    });

    it('measures age against nowMs, not the wall clock', () => {
      const b = [backup(0), backup(10)];
      // Ten days ago relative to NOW is in the future of a nowMs from long before.
      expect(selectForPruning(b, { count: 1000, maxAgeDays: 1, nowMs: NOW - 365 * DAY })).toEqual([]);
      expect(names(selectForPruning(b, { count: 1000, maxAgeDays: 1, nowMs: NOW }))).toEqual([b[1].name]);
    });
  });

  describe('count and age together', () => {
    const b = [0, 1, 2, 3, 10, 20].map((daysAgo) => backup(daysAgo));

    it('prunes the union: beyond the count, or too old', () => {
      // count 4 alone: b4, b5; age 2 days alone: b3, b4, b5.
      for (const input of orders(b)) {
        expect(names(selectForPruning(input, { count: 4, maxAgeDays: 2, nowMs: NOW }))).toEqual(
          names([b[3], b[4], b[5]]),
        );
        // count 2 alone: b2..b5; age 15 days alone: b5.
        expect(names(selectForPruning(input, { count: 2, maxAgeDays: 15, nowMs: NOW }))).toEqual(
          names([b[2], b[3], b[4], b[5]]),
        );
      }
    });

    it('still keeps the newest when everything is too old', () => {
      const old = [backup(40), backup(50), backup(60)];
      expect(names(selectForPruning(old, { count: 2, maxAgeDays: 30, nowMs: NOW }))).toEqual(names([old[1], old[2]]));
    });

    it('lists each pruned file once', () => {
      const doomed = selectForPruning(b, { count: 1, maxAgeDays: 1, nowMs: NOW });
      expect(doomed).toHaveLength(5);
      expect(new Set(doomed.map((f) => f.name)).size).toBe(5);
    });
  });

  describe('the backup its own request just made', () => {
    it('is never selected, even when a name slightly ahead of the clock (within the tolerance) outranks it', () => {
      // Two minutes ahead: within the tolerance, so an ordinary candidate that sorts above the new backup.
      const ahead = file(formatBackupName(BACKUP_PREFIX, new Date(NOW + 2 * 60 * 1000), 1));
      const made = backup(0);
      for (const input of orders([ahead, made, backup(1)])) {
        const doomed = selectForPruning(input, { count: 1, maxAgeDays: 0, nowMs: NOW, keep: made.name });
        expect(names(doomed)).toEqual(names([backup(1)]));
      }
    });

    it('is never selected by the age rule either', () => {
      const made = backup(30);
      const doomed = selectForPruning([backup(0), made], { count: 1000, maxAgeDays: 1, nowMs: NOW, keep: made.name });
      expect(doomed).toEqual([]);
    });
  });

  describe('names later than now (a clock that was once ahead)', () => {
    const future = [400, 401, 402].map((days) => backup(-days));

    it('neither removes the new backup nor counts the future-named ones (count 3, three names +400 days)', () => {
      const made = backup(0);
      for (const input of orders([...future, made])) {
        const plan = planRetention(input, { count: 3, maxAgeDays: 0, nowMs: NOW });
        expect(plan.doomed).toEqual([]);
        expect(names(plan.futureNamed)).toEqual(names(future));
      }
    });

    it('keeps exactly `count` real backups beside them, pruning only real old ones', () => {
      const real = [0, 1, 2, 3, 4].map((daysAgo) => backup(daysAgo));
      for (const input of orders([...future, ...real])) {
        const plan = planRetention(input, { count: 3, maxAgeDays: 0, nowMs: NOW });
        expect(names(plan.doomed)).toEqual(names([real[3], real[4]]));
      }
    });

    it('does not let a future name take the place of the newest real backup under the age rule', () => {
      const real = [backup(100), backup(200)];
      for (const input of orders([...future, ...real])) {
        const plan = planRetention(input, { count: 1000, maxAgeDays: 1, nowMs: NOW });
        // The newest real backup stays, however old: the future-named ones are not "the newest".
        expect(names(plan.doomed)).toEqual([real[1].name]);
        expect(names(plan.futureNamed)).toEqual(names(future));
      }
    });

    it('tolerates small drift: a name up to the tolerance ahead is an ordinary candidate, a second more is not', () => {
      const edge = file(formatBackupName(BACKUP_PREFIX, new Date(NOW + FUTURE_NAME_TOLERANCE_MS), 1));
      const beyond = file(formatBackupName(BACKUP_PREFIX, new Date(NOW + FUTURE_NAME_TOLERANCE_MS + 1000), 1));
      const plan = planRetention([edge, beyond, backup(0), backup(1)], { count: 2, maxAgeDays: 0, nowMs: NOW });
      expect(names(plan.futureNamed)).toEqual([beyond.name]);
      expect(names(plan.doomed)).toEqual([backup(1).name]);
    });

    it('treats them as ordinary backups once the clock has passed their time', () => {
      const later = NOW + 403 * DAY;
      const plan = planRetention([...future, backup(0)], { count: 2, maxAgeDays: 0, nowMs: later });
      expect(plan.futureNamed).toEqual([]);
      expect(names(plan.doomed)).toEqual([backup(0).name, future[0].name].sort());
    });

    it('reports only mc-backup- candidates as future-named', () => {
      const upload = backup(-400, 1, UPLOAD_PREFIX);
      const plan = planRetention([upload, backup(0)], { count: 1, maxAgeDays: 0, nowMs: NOW });
      expect(plan.futureNamed).toEqual([]);
    });
  });

  describe('the kind the manifest records', () => {
    // A copy pulled from the bucket keeps its mc-backup- name; its manifest says it came from outside.
    const pulled: RetentionCandidate = { ...backup(5), recordedKind: 'upload' };
    const restoredSafety: RetentionCandidate = { ...backup(6), recordedKind: 'safety' };

    it('never selects a file recorded as an upload or safety copy, under either rule, nor counts it', () => {
      const real = [backup(0), backup(1), backup(2)];
      for (const input of orders([pulled, restoredSafety, ...real])) {
        expect(selectForPruning(input, { count: 3, maxAgeDays: 0, nowMs: NOW })).toEqual([]);
        expect(names(selectForPruning(input, { count: 1, maxAgeDays: 1, nowMs: NOW }))).toEqual(
          names([real[1], real[2]]),
        );
      }
    });

    it('treats a file recorded as manual or scheduled, or with no manifest, by its name', () => {
      const manual: RetentionCandidate = { ...backup(5), recordedKind: 'scheduled' };
      const unknown: RetentionCandidate = { ...backup(6), recordedKind: null };
      expect(names(selectForPruning([backup(0), manual, unknown], { count: 1, maxAgeDays: 0, nowMs: NOW }))).toEqual(
        names([manual, unknown]),
      );
    });
  });
});
