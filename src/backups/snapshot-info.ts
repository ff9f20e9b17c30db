import { parseBackupName } from './backup-name';
import type { SnapshotResult } from '../sqlite/snapshot';

/** A published hot copy of a database (BackupFiles.snapshot / publishSnapshot). */
export interface SnapshotInfo {
  name: string;
  size: number;
  createdAtMs: number;
  durationMs: number;
  pages: number;
  /** sqlite3_backup_step calls made; 2 means the copy ran in one step (see snapshot.ts). */
  steps: number;
  /** Computed by the worker right after the fsync (null when `hash: false`). */
  sha256: string | null;
  sqliteVersion: string | null;
  schemaVersion: number | null;
  quickCheck: 'ok';
  /** How the pages were copied (see snapshot-copy.ts). */
  method: 'raw' | 'backup-api';
}

/** A restore's scratch copy: `sha256` of the bytes written, null when it was copied through SQLite. */
export type ScratchCopy = { tmp: string; sha256: string | null };

/** What the worker found of a copy, under the name it was published as (`startedMs`: when its copy began). */
export function snapshotInfo(name: string, result: SnapshotResult, now: Date, startedMs: number): SnapshotInfo {
  const parsed = parseBackupName(name);
  return {
    name,
    size: result.size,
    createdAtMs: parsed ? parsed.createdAtMs : Math.floor(now.getTime() / 1000) * 1000,
    durationMs: performance.now() - startedMs,
    pages: result.pages,
    steps: result.steps,
    sha256: result.sha256,
    sqliteVersion: result.sqliteVersion,
    schemaVersion: result.schemaVersion,
    quickCheck: result.quickCheck,
    method: result.method ?? 'backup-api',
  };
}
