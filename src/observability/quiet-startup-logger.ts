import type { LoggerService } from '@nestjs/common';

/** Nest's own start-up chatter: one line per module, controller and route (about 60 lines). */
const FRAMEWORK_CONTEXTS = new Set(['NestFactory', 'InstanceLoader', 'RouterExplorer', 'NestApplication']);
/**
 * "XController {/api/x}" lines: they duplicate RouterExplorer's "Mapped {…} route" lines and name routes excluded
 * from the global prefix wrongly (`{/api/metrics}` for `/metrics`), so they are dropped.
 */
const DROPPED_CONTEXTS = new Set(['RoutesResolver']);

/**
 * The app's logger (pino) with Nest's start-up lines moved from info to debug, so `npm start` prints a few lines
 * an operator reads (see startup-summary.ts) and LOG_LEVEL=debug still shows the route map.
 */
export class QuietStartupLogger implements LoggerService {
  constructor(private readonly inner: LoggerService) {}

  log(message: unknown, ...rest: unknown[]): void {
    const context = rest[rest.length - 1];
    if (typeof context === 'string' && DROPPED_CONTEXTS.has(context)) {
      return;
    }
    if (typeof context === 'string' && FRAMEWORK_CONTEXTS.has(context)) {
      this.inner.debug?.(message, ...rest);
      return;
    }
    this.inner.log(message, ...rest);
  }

  error(message: unknown, ...rest: unknown[]): void {
    this.inner.error(message, ...rest);
  }

  warn(message: unknown, ...rest: unknown[]): void {
    this.inner.warn(message, ...rest);
  }

  debug(message: unknown, ...rest: unknown[]): void {
    this.inner.debug?.(message, ...rest);
  }

  verbose(message: unknown, ...rest: unknown[]): void {
    this.inner.verbose?.(message, ...rest);
  }

  fatal(message: unknown, ...rest: unknown[]): void {
    (this.inner.fatal ?? this.inner.error).call(this.inner, message, ...rest);
  }
}
