import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SegmentManifest, SnapshotManifest } from './replica-layout';
import type { WalPosition } from './wal-reader';

/**
 * The local spool beside the database: segments (already gzip + age, byte for byte what is uploaded, so a retry
 * stores the same object) and snapshots waiting for the bucket, and the shipper's saved position. Entries are
 * numbered; they are uploaded strictly in that order and removed once stored.
 */

export type SnapshotDraft = Omit<SnapshotManifest, 'sha256' | 'object_sha256' | 'object_size' | 'size' | 'encrypted'>;

export type SpoolEntry =
  | { seq: number; kind: 'segment'; manifest: SegmentManifest; dataFile: string; bytes: number }
  | { seq: number; kind: 'snapshot'; manifest: SnapshotDraft; dataFile: string; bytes: number };

export interface ShipperState {
  generation: string | null;
  nextIndex: number;
  /** Null while waiting for the next WAL header (the WAL was empty). */
  position: WalPosition | null;
  /** This service checkpointed the whole cycle at `position` and nothing was appended: a restart is expected. */
  closed: boolean;
}

const STATE_FILE = 'state.json';

function seqName(seq: number): string {
  return String(seq).padStart(12, '0');
}

/**
 * Stores an encoded segment durably (fsynced) before the position past it is saved; synchronous, for the shipper's
 * thread. The manifest last, whole (temp + rename): an entry is listed only once both are complete.
 */
export function writeSegmentEntry(dir: string, seq: number, manifest: SegmentManifest, bytes: Buffer): void {
  const base = path.join(dir, `${seqName(seq)}.seg`);
  const fd = fs.openSync(`${base}.tmp`, 'w', 0o600);
  try {
    fs.writeFileSync(fd, bytes);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(`${base}.tmp`, base);
  fs.writeFileSync(`${base}.json.tmp`, JSON.stringify(manifest), { mode: 0o600 });
  fs.renameSync(`${base}.json.tmp`, `${base}.json`);
}

/** Temp name + rename: a crash leaves the old state or the new one, never half of one. */
export function writeStateFile(dir: string, state: ShipperState): void {
  const file = path.join(dir, STATE_FILE);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(state), { mode: 0o600 });
  fs.renameSync(`${file}.tmp`, file);
}

export class Spool {
  private nextSeq = 1;

  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const entry of this.entries()) {
      this.nextSeq = Math.max(this.nextSeq, entry.seq + 1);
    }
  }

  loadState(): ShipperState | null {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dir, STATE_FILE), 'utf8')) as ShipperState;
    } catch {
      return null;
    }
  }

  saveState(state: ShipperState): void {
    writeStateFile(this.dir, state);
  }

  /** A number for the next entry (written by the shipper's thread with writeSegmentEntry). */
  reserveSeq(): number {
    return this.nextSeq++;
  }

  /** Moves a finished snapshot file into the spool; it is encrypted while it is uploaded. */
  addSnapshot(manifest: SnapshotDraft, file: string): void {
    const seq = this.nextSeq++;
    const base = path.join(this.dir, `${seqName(seq)}.snap`);
    fs.renameSync(file, base);
    fs.writeFileSync(`${base}.json`, JSON.stringify(manifest), { mode: 0o600 });
  }

  /** A path for a snapshot being made (removed by clearTemp when abandoned). */
  tempPath(name: string): string {
    return path.join(this.dir, `tmp-${name}`);
  }

  clearTemp(): void {
    for (const name of fs.readdirSync(this.dir)) {
      if (name.startsWith('tmp-') || name.endsWith('.tmp')) {
        fs.rmSync(path.join(this.dir, name), { force: true });
      }
    }
  }

  entries(): SpoolEntry[] {
    const result: SpoolEntry[] = [];
    for (const name of fs.readdirSync(this.dir).sort()) {
      const match = /^(\d{12})\.(seg|snap)\.json$/.exec(name);
      if (!match) {
        continue;
      }
      const dataFile = path.join(this.dir, name.slice(0, -'.json'.length));
      let bytes: number;
      try {
        bytes = fs.statSync(dataFile).size;
      } catch {
        continue;
      }
      const manifest: unknown = JSON.parse(fs.readFileSync(path.join(this.dir, name), 'utf8'));
      const seq = Number(match[1]);
      result.push(
        match[2] === 'seg'
          ? { seq, kind: 'segment', manifest: manifest as SegmentManifest, dataFile, bytes }
          : { seq, kind: 'snapshot', manifest: manifest as SnapshotDraft, dataFile, bytes },
      );
    }
    return result;
  }

  /**
   * Segments of `generation` from `nextIndex` on: spooled by a process killed before it saved the position past
   * them. The WAL still holds their frames (nothing is checkpointed past a saved position), so they are read
   * again; kept, they would be a second segment under the same key.
   */
  dropUnsaved(generation: string, nextIndex: number): void {
    for (const entry of this.entries()) {
      if (entry.kind === 'segment' && entry.manifest.generation === generation && entry.manifest.index >= nextIndex) {
        this.remove(entry);
      }
    }
  }

  remove(entry: SpoolEntry): void {
    fs.rmSync(`${entry.dataFile}.json`, { force: true });
    fs.rmSync(entry.dataFile, { force: true });
  }

  pendingBytes(): number {
    return this.entries().reduce((sum, e) => sum + e.bytes, 0);
  }
}
