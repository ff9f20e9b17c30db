import { DynamicModule, Global, Module } from '@nestjs/common';
import type { DestinationStream } from 'pino';
import type { HttpBodyOptions } from '../common/http-body';
import type { DatabaseCheck } from '../sqlite/database-check';

/** How failure alerts are delivered; production uses {@link DEFAULT_ALERT_DELIVERY}. */
export interface AlertDeliveryOptions {
  /** Per try: the request is aborted after this long. */
  timeoutMs: number;
  /** Waits between tries: `[1000, 2000]` means 3 tries, 1 s then 2 s apart. */
  backoffMs: number[];
}

export const DEFAULT_ALERT_DELIVERY: AlertDeliveryOptions = { timeoutMs: 10_000, backoffMs: [1_000, 2_000] };

/**
 * Seams that are not configuration: where logs go, how fast alerts retry, how free disk space is measured.
 * Production passes none of them; tests pass them through `createApp(config, options)`.
 */
export interface ObservabilityOptions {
  /** Every log line as JSON to this stream instead of stdout (pretty printing is skipped). */
  logStream?: DestinationStream;
  alertDelivery?: Partial<AlertDeliveryOptions>;
  /** Free bytes available to an unprivileged writer in `dir`; defaults to `fs.statfs`. */
  freeDiskBytes?: (dir: string) => Promise<number>;
  /** Body idle timeout and the bounds of discarding a refused body (see configureHttpBodies). */
  httpBody?: HttpBodyOptions;
  /** The database probe's schedule (deleted -wal/-shm scan, quick_check); see DatabaseProbe. */
  databaseProbe?: {
    scanIntervalMs?: number;
    quickCheckIntervalMs?: number;
    firstQuickCheckMs?: number;
    /** The next try after a probe that could not run. */
    retryMs?: number;
    /** The check run instead of the engine's worker (a fault point for tests: one that cannot start). */
    check?: (file: string) => Promise<DatabaseCheck>;
    /** better-sqlite3's native module for the probe's worker (a fault point for tests: a missing one). */
    nativeBinding?: string;
  };
}

export const OBSERVABILITY_OPTIONS = Symbol('OBSERVABILITY_OPTIONS');

/** Inject with `{ token: OBSERVABILITY_OPTIONS, optional: true }`: an app built without createApp has none. */
@Global()
@Module({})
export class ObservabilityOptionsModule {
  static forRoot(options: ObservabilityOptions = {}): DynamicModule {
    return {
      module: ObservabilityOptionsModule,
      providers: [{ provide: OBSERVABILITY_OPTIONS, useValue: options }],
      exports: [OBSERVABILITY_OPTIONS],
    };
  }
}
