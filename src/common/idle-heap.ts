import type { NextFunction, Request, Response } from 'express';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

/** How long without a request counts as idle. */
export const IDLE_MS = 20_000;
/** Requests since the last collection that make it worth one (a burst, not a health check now and then). */
export const BURST_REQUESTS = 500;

/**
 * A full garbage collection once the service falls idle after a burst of requests. Under load V8 grows its heap
 * to several times what is live, and it shrinks it again only after a major collection, which an idle process may
 * not run for minutes: the RSS stays up although nothing holds the memory. One collection when no request has come
 * for {@link IDLE_MS} returns it while nobody waits for an answer.
 *
 * V8 exposes `gc` only with --expose-gc; setting that flag now and reading `gc` in a new context gives the same
 * function without changing how the service is started.
 */
export function exposedGc(): (() => void) | null {
  const existing = (globalThis as { gc?: unknown }).gc;
  if (typeof existing === 'function') {
    return existing as () => void;
  }
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('gc');
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}

export class IdleHeapRelease {
  private requests = 0;
  private lastRequestAt = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Collections run so far (for tests and diagnosis). */
  collections = 0;

  constructor(
    private readonly gc: (() => void) | null = exposedGc(),
    private readonly idleMs = IDLE_MS,
    private readonly burst = BURST_REQUESTS,
    private readonly now: () => number = Date.now,
  ) {}

  readonly middleware = (_req: Request, _res: Response, next: NextFunction): void => {
    this.requests += 1;
    this.lastRequestAt = this.now();
    if (this.timer === undefined && this.gc !== null && this.requests >= this.burst) {
      this.arm(this.idleMs);
    }
    next();
  };

  private arm(ms: number): void {
    this.timer = setTimeout(() => this.check(), ms);
    // Never keeps the process alive (shutdown, tests).
    this.timer.unref();
  }

  private check(): void {
    this.timer = undefined;
    const quietFor = this.now() - this.lastRequestAt;
    if (quietFor < this.idleMs) {
      this.arm(this.idleMs - quietFor);
      return;
    }
    this.requests = 0;
    this.collections += 1;
    this.gc?.();
  }
}
