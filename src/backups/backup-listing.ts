import type { Dirent } from 'node:fs';
import { lstatSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { type BackupKind, compareNewestFirst, parseBackupName, validateBackupName } from './backup-name';

/** One file of the backups folder, as listed. */
export interface BackupFileInfo {
  name: string;
  size: number;
  mtimeMs: number;
  /** From the name when it is one of ours (second precision), else the file's mtime. */
  createdAtMs: number;
  /** From the name's prefix; null for a valid `.db` name that is not one of ours. `mc-backup-` reads as manual. */
  kind: BackupKind | null;
  seq: number;
}

/** A listing taken sooner than this after the folder's last change is not reused (same-tick changes). */
const LISTING_TRUST_AFTER_MS = 1000;
/**
 * list() stats this many entries synchronously between two turns of the event loop: a local lstat is far cheaper
 * than a libuv pool round trip, and 256 of them block the loop well under a millisecond.
 */
const STAT_BATCH = 256;

/** The backups folder's listing for BackupFiles, cached while the folder is unchanged. */
export class BackupListing {
  private cached: { stamp: string; files: BackupFileInfo[]; trusted: boolean } | null = null;
  private folderMtimeMs = 0;
  private scanCount = 0;

  constructor(
    private readonly root: string,
    private readonly readEntries: () => Promise<Dirent[]>,
  ) {}

  /**
   * The backup files, newest first. Cached (without it every call costs an lstat and a name parse
   * per file; docs/benchmarks.md has the measurement): reused while the folder's mtime and ctime are unchanged, which any
   * create, delete or rename in it changes. Only trusted when the listing was taken over a second after the folder's
   * last change (a change within the same timestamp tick could otherwise go unseen), and dropped on every change
   * this process makes. A file rewritten in place keeps its entry (backups are never rewritten).
   */
  async list(): Promise<BackupFileInfo[]> {
    const stamp = await this.folderStamp();
    const cached = this.cached;
    if (cached && stamp !== null && cached.stamp === stamp && cached.trusted) {
      return [...cached.files];
    }
    const wallAtMs = Date.now();
    const files = await this.scan();
    this.cached =
      stamp === null ? null : { stamp, files, trusted: wallAtMs - this.folderMtimeMs > LISTING_TRUST_AFTER_MS };
    return [...files];
  }

  /** How many times the folder was actually read and every file stat'ed (a test counts them). */
  get scans(): number {
    return this.scanCount;
  }

  private async folderStamp(): Promise<string | null> {
    try {
      const st = await fsp.stat(this.root, { bigint: true });
      this.folderMtimeMs = Number(st.mtimeNs / 1_000_000n);
      return `${st.ino}:${st.mtimeNs}:${st.ctimeNs}`;
    } catch {
      return null;
    }
  }

  invalidate(): void {
    this.cached = null;
  }

  private async scan(): Promise<BackupFileInfo[]> {
    this.scanCount += 1;
    const entries = await this.readEntries();
    // Node resolves an unknown dirent type with lstat, so a symlink or folder is never isFile() here.
    const candidates = entries.filter((e) => e.isFile() && validateBackupName(e.name).ok);
    const infos: BackupFileInfo[] = [];
    for (let start = 0; start < candidates.length; start += STAT_BATCH) {
      if (start > 0) {
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      for (const entry of candidates.slice(start, start + STAT_BATCH)) {
        // Gone since the readdir: not listed (throwIfNoEntry); any other failure is thrown as before.
        const st = lstatSync(path.join(this.root, entry.name), { throwIfNoEntry: false });
        if (!st?.isFile()) {
          continue;
        }
        const parsed = parseBackupName(entry.name);
        infos.push({
          name: entry.name,
          size: st.size,
          mtimeMs: st.mtimeMs,
          createdAtMs: parsed ? parsed.createdAtMs : Math.floor(st.mtimeMs),
          kind: parsed ? parsed.kind : null,
          seq: parsed ? parsed.seq : 1,
        });
      }
    }
    return infos.sort(compareNewestFirst);
  }
}
