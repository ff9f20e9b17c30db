import * as fs from 'node:fs';
import type { ReplicaStore } from './replica-store';
import type { Spool } from './spool';

export interface UploadOutcome {
  /** Something was tried (the spool was not empty). */
  attempted: boolean;
  /** Observed time of the newest commit (or snapshot) now stored; null when nothing was stored. */
  shippedMs: number | null;
  /** Why the upload stopped, or null when the spool is empty now. */
  error: string | null;
}

/**
 * Uploads the spool strictly in order and removes each entry once stored; stops at the first failure, so the
 * bucket never holds a segment whose predecessor is missing because of this process. One run at a time.
 */
export class SpoolUploader {
  private running = false;
  /**
   * The last attempt failed, or this process has just started (a killed one may have stored the first entry
   * without removing it): the next attempt may find its object already stored.
   */
  private retry = true;
  failing = false;
  /** The newest segment this process stored; every segment of its generation before it is in the bucket too. */
  lastStoredSegment: { generation: string; index: number } | null = null;

  constructor(
    private readonly spool: Spool,
    private readonly store: ReplicaStore,
  ) {}

  async run(): Promise<UploadOutcome> {
    const outcome: UploadOutcome = { attempted: false, shippedMs: null, error: null };
    if (this.running) {
      return outcome;
    }
    this.running = true;
    try {
      for (const entry of this.spool.entries()) {
        outcome.attempted = true;
        try {
          if (entry.kind === 'segment') {
            await this.store.putSegment(entry.manifest, fs.readFileSync(entry.dataFile), this.retry);
          } else {
            await this.store.putSnapshot(entry.dataFile, entry.manifest, this.retry);
          }
        } catch (error) {
          this.retry = true;
          this.failing = true;
          outcome.error = error instanceof Error ? error.message : String(error);
          return outcome;
        }
        this.retry = false;
        this.failing = false;
        this.spool.remove(entry);
        if (entry.kind === 'segment') {
          this.lastStoredSegment = { generation: entry.manifest.generation, index: entry.manifest.index };
        }
        outcome.shippedMs = entry.kind === 'segment' ? entry.manifest.last_commit_ms : entry.manifest.created_ms;
      }
      return outcome;
    } finally {
      this.running = false;
    }
  }
}
