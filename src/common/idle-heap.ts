import type { NextFunction, Request, Response } from 'express';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

/** The window over which the request rate is judged. */
export const IDLE_MS = 20_000;
/** At most this many requests in a window count as idle (a monitor's health checks, a user now and then). */
export const QUIET_REQUESTS = 10;
/** Requests since the last collection that make it worth one (a burst, not a health check now and then). */
export const BURST_REQUESTS = 500;

/**
 * A full garbage collection once the service falls quiet after a burst of requests. Under load V8 grows its heap
 * to several times what is live, and it shrinks it again only after a major collection, which a quiet process may
 * not run for minutes: the RSS stays up although nothing holds the memory. One collection once a whole window has
 * seen no more than {@link QUIET_REQUESTS} requests returns it while almost nobody waits for an answer.
 *
 * V8 exposes `gc` only with --expose-gc; setting that flag now and reading `gc` in a new context gives the same
 * function without changing how the service is started. The flag is put back at once: V8 tags code caches with its
 * flags, so a flag left changed made the launchers' code cache (scripts/compile-cache.js) reject, and write again,
 * the bytecode of hundreds of modules on every start.
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
  } finally {
    v8.setFlagsFromString('--no-expose-gc');
  }
}

export class IdleHeapRelease {
  private sinceCollection = 0;
  private inWindow = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Collections run so far (for tests and diagnosis). */
  collections = 0;

  constructor(
    private readonly gc: (() => void) | null = exposedGc(),
    private readonly windowMs = IDLE_MS,
    private readonly burst = BURST_REQUESTS,
    private readonly quiet = QUIET_REQUESTS,
  ) {}

  readonly middleware = (_req: Request, _res: Response, next: NextFunction): void => {
    this.sinceCollection += 1;
    this.inWindow += 1;
    if (this.timer === undefined && this.gc !== null && this.sinceCollection >= this.burst) {
      this.inWindow = 0;
      this.timer = setInterval(() => this.tick(), this.windowMs);
      // Never keeps the process alive (shutdown, tests).
      this.timer.unref();
    }
    next();
  };

  private tick(): void {
    const requests = this.inWindow;
    this.inWindow = 0;
    if (requests > this.quiet) {
      return;
    }
    clearInterval(this.timer);
    this.timer = undefined;
    this.sinceCollection = 0;
    this.collections += 1;
    this.gc?.();
  }
}
