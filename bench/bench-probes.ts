/** Probes that watch the app while a backup runs. Used in the bench process and in bench/http-writer.ts. */
import { readFileSync } from 'node:fs';
import { constants as perfConstants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { sleep } from './bench-util';

export interface LatencySamples {
  samples: number[];
  errors: number;
  firstError?: string;
  /** When the slowest operation started, in ms after start(); NaN without samples. */
  slowestAtMs: number;
}

export function noSamples(): LatencySamples {
  return { samples: [], errors: 0, slowestAtMs: NaN };
}

/**
 * Repeats one small operation back to back, `intervalMs` after the previous one completed, and records each one's
 * latency. A sequential loop: an operation that stalls delays the next one (no coordinated-omission correction), so
 * max is the stall itself and a long stall is one sample, not many.
 */
export class LatencyProbe {
  private result: LatencySamples = noSamples();
  private running = false;
  private origin = 0;
  private slowest = -1;
  private loop?: Promise<void>;

  constructor(
    private readonly operation: () => Promise<void>,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.result = noSamples();
    this.origin = performance.now();
    this.slowest = -1;
    this.running = true;
    this.loop = this.run();
  }

  /** Waits for the operation in flight (its latency counts), then returns what was recorded since start(). */
  async stop(): Promise<LatencySamples> {
    this.running = false;
    await this.loop;
    return this.result;
  }

  private async run(): Promise<void> {
    while (this.running) {
      const started = performance.now();
      try {
        await this.operation();
        const ms = performance.now() - started;
        this.result.samples.push(ms);
        if (ms > this.slowest) {
          this.slowest = ms;
          this.result.slowestAtMs = started - this.origin;
        }
      } catch (error) {
        this.result.errors += 1;
        this.result.firstError ??= error instanceof Error ? error.message : String(error);
      }
      await sleep(this.intervalMs);
    }
  }
}

/** Anonymous resident memory (heap, buffers, SQLite caches), without file pages mapped in: Linux only, else NaN. */
function rssAnonBytes(): number {
  try {
    const match = /^RssAnon:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return match ? Number(match[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Samples process RSS (main thread + worker threads) every few ms; reports max minus the value at start. Also the
 * anonymous part alone: file pages mapped into the process (e.g. by SQLite's mmap_size) count in RSS although they
 * are the kernel's page cache, not memory the service allocated; the two rows tell them apart.
 */
export class RssProbe {
  private before = 0;
  private peak = 0;
  private anonBefore = 0;
  private anonPeak = 0;
  private timer?: NodeJS.Timeout;

  start(intervalMs = 5): void {
    this.before = process.memoryUsage.rss();
    this.peak = this.before;
    this.anonBefore = rssAnonBytes();
    this.anonPeak = this.anonBefore;
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  /** Growth in bytes: the highest sample (one taken now included) minus the first. */
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.peak - this.before;
  }

  /** Growth of anonymous resident memory, in bytes (valid after stop()). */
  anonGrowth(): number {
    return this.anonPeak - this.anonBefore;
  }

  private sample(): void {
    this.peak = Math.max(this.peak, process.memoryUsage.rss());
    this.anonPeak = Math.max(this.anonPeak, rssAnonBytes());
  }
}

export interface StallReport {
  /** The longest gap between two ticks of a 1 ms interval timer, minus the 1 ms, and when it began. */
  longestMs: number;
  longestAtMs: number;
  /** Main-thread garbage collections while it ran: the longest pause and how many took over 10 ms. */
  gcMaxMs: number;
  /** What kind of collection the longest was (minor = scavenge, major = mark-compact, incremental, weakcb). */
  gcMaxKind: string;
  gcOver10ms: number;
}

const GC_KINDS: Record<number, string> = {
  [perfConstants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [perfConstants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [perfConstants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

function noStall(): StallReport {
  return { longestMs: 0, longestAtMs: NaN, gcMaxMs: 0, gcMaxKind: '', gcOver10ms: 0 };
}

/**
 * Says when the event loop's longest stall happened (monitorEventLoopDelay only says how long), and whether the
 * main thread's garbage collector could explain it.
 */
export class StallProbe {
  private origin = 0;
  private last = 0;
  private report: StallReport = noStall();
  private timer?: NodeJS.Timeout;
  private readonly gc = new PerformanceObserver((list) => this.count(list.getEntries()));

  start(): void {
    this.origin = performance.now();
    this.last = this.origin;
    this.report = noStall();
    this.gc.observe({ entryTypes: ['gc'] });
    this.timer = setInterval(() => this.tick(), 1);
  }

  stop(): StallReport {
    clearInterval(this.timer);
    this.tick();
    // Entries already queued for the observer are delivered to it before disconnecting.
    this.count(this.gc.takeRecords());
    this.gc.disconnect();
    return this.report;
  }

  private count(entries: PerformanceEntry[]): void {
    for (const entry of entries) {
      if (entry.duration > this.report.gcMaxMs) {
        this.report.gcMaxMs = entry.duration;
        const kind = (entry as unknown as { detail?: { kind?: number } }).detail?.kind;
        this.report.gcMaxKind = kind === undefined ? '' : (GC_KINDS[kind] ?? String(kind));
      }
      if (entry.duration > 10) {
        this.report.gcOver10ms += 1;
      }
    }
  }

  private tick(): void {
    const now = performance.now();
    const gap = now - this.last - 1;
    if (gap > this.report.longestMs) {
      this.report.longestMs = gap;
      this.report.longestAtMs = this.last - this.origin;
    }
    this.last = now;
  }
}
