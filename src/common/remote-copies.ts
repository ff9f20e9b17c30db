import { Injectable } from '@nestjs/common';

export type OffsiteStatus = 'off' | 'pending' | 'uploaded' | 'failed';

/** What `GET /api/backup` says of a backup's off-site copy. */
export interface OffsiteCopyView {
  status: OffsiteStatus;
  /** Unix seconds, once uploaded. */
  uploaded_at: number | null;
  /** Why the last try failed (a short code, never a path or a secret), while failing. */
  error: string | null;
  /**
   * For an uploaded copy: false once the bucket no longer holds it (off-site retention deleted it, or it was not
   * there when the bucket was last listed), else true. Null for a copy not uploaded.
   */
  in_bucket: boolean | null;
}

/** The queue as a whole, for metrics and health. Times in Unix seconds. */
export interface OffsiteProgressView {
  configured: boolean;
  /** Backups not uploaded yet (pending or failing). */
  pending: number;
  /** When the last upload succeeded. */
  lastUploadedAt: number | null;
  /** Since when the oldest still-failing upload has been failing; null when none is failing. */
  failingSince: number | null;
  /** The time in the name of the newest backup queued for off-site, uploaded or not. */
  newestBackupAt: number | null;
  /** The time in the name of the newest backup whose copy is uploaded (by this machine or, seen in the bucket, any). */
  newestUploadedBackupAt: number | null;
  /** Since when the oldest backup not uploaded yet has waited (queued at); null when none waits. */
  oldestWaitingSince?: number | null;
  /** The newest copy the bucket was last seen to hold with a valid manifest; null when none, or never looked. */
  newestCopy?: { name: string; createdAt: number; storedAt: number; checkedAt: number } | null;
}

/** What the off-site module knows, read synchronously (it is a small local table). */
export interface RemoteCopyTracker {
  copyOf(name: string): OffsiteCopyView;
  /** Backups whose copy is not uploaded yet: local retention must keep them. */
  awaitingUpload(): ReadonlySet<string>;
  progress(): OffsiteProgressView;
}

const NOT_CONFIGURED: OffsiteProgressView = {
  configured: false,
  pending: 0,
  lastUploadedAt: null,
  failingSince: null,
  newestBackupAt: null,
  newestUploadedBackupAt: null,
};

const OFF: OffsiteCopyView = { status: 'off', uploaded_at: null, error: null, in_bucket: null };

/**
 * The seam between the backups folder and off-site copies. `src/backups` must not import `src/offsite`: the
 * off-site module attaches its tracker here, and backups ask this registry (which answers `off` / nothing held
 * when off-site is not configured, or in a process without the off-site module).
 */
@Injectable()
export class RemoteCopies {
  private tracker: RemoteCopyTracker | null = null;

  attach(tracker: RemoteCopyTracker): void {
    this.tracker = tracker;
  }

  /** Safety copies are never sent off-site. */
  copyOf(name: string, kind: string): OffsiteCopyView {
    if (this.tracker === null || kind === 'safety') {
      return OFF;
    }
    return this.tracker.copyOf(name);
  }

  awaitingUpload(): ReadonlySet<string> {
    return this.tracker?.awaitingUpload() ?? new Set();
  }

  progress(): OffsiteProgressView {
    return this.tracker?.progress() ?? NOT_CONFIGURED;
  }
}
