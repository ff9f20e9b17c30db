/**
 * When the shipper runs: at most one shipping round (one that found new commits) per interval, so
 * REPLICATION_SYNC_INTERVAL_MS keeps bounding how often segments are stored (and paid for); and a round at the
 * latest one interval after the previous one, for retries and checkpoints. Between those, a cheap look at the WAL
 * (a stat, no descriptor) every few tens of ms: a commit after a quiet spell ships at once instead of waiting for
 * the next tick.
 */
export interface RoundSchedulerOptions {
  intervalMs: number;
  now: () => number;
  /** Changes whenever the WAL does (size and modification time). */
  walStamp: () => string;
  /** One round; resolves true when it shipped new commits. */
  run: () => Promise<boolean>;
  pollMs?: number;
}

export class RoundScheduler {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private lastRoundMs = Number.NEGATIVE_INFINITY;
  private lastShipMs = Number.NEGATIVE_INFINITY;
  private stamp = '';

  constructor(private readonly options: RoundSchedulerOptions) {}

  start(): void {
    const pollMs = this.options.pollMs ?? Math.min(50, this.options.intervalMs);
    this.timer = setInterval(() => this.poll(), pollMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /** The round under way, if any. */
  get current(): Promise<void> | null {
    return this.running;
  }

  private poll(): void {
    if (this.running !== null) {
      return;
    }
    const now = this.options.now();
    const interval = this.options.intervalMs;
    let due = now - this.lastRoundMs >= interval;
    if (!due && now - this.lastShipMs >= interval) {
      const stamp = this.options.walStamp();
      due = stamp !== this.stamp;
    }
    if (!due) {
      return;
    }
    this.stamp = this.options.walStamp();
    this.lastRoundMs = now;
    this.running = this.options
      .run()
      .then((shipped) => {
        if (shipped) {
          this.lastShipMs = now;
        }
      })
      .catch(() => undefined)
      .finally(() => {
        this.running = null;
      });
  }
}
