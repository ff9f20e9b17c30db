import { ReplicationService } from '../replication/replication.service';
import { type INestApplication, Logger, type LoggerService } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { ServiceState } from '../common/availability';
import { OperationLock } from '../common/operation-lock';
import type { AppConfig } from '../config/app-config';
import { SQLITE_HANDLE, type SqliteHandle } from '../database/sqlite-handle';

export const SHUTDOWN_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];
/** After SHUTDOWN_TIMEOUT_MS, this much more for closing before the process is ended with exit code 1. */
export const FORCE_EXIT_MARGIN_MS = 10_000;
/** Work counts as finished only when nothing ran at two checks this far apart (a queued backup starts between). */
const IDLE_POLL_MS = 25;

export interface GracefulShutdownOptions {
  signals?: readonly NodeJS.Signals[];
  marginMs?: number;
  /** Defaults to process.exit; tests pass a recorder. */
  exit?: (code: number) => void;
  /** Where the signals are listened for; defaults to process. */
  signalSource?: NodeJS.EventEmitter;
}

/**
 * SIGTERM / SIGINT handling that ends in exit code 0 after a clean stop, instead of Nest's enableShutdownHooks
 * (which re-raises the signal, so the process ends "killed by SIGTERM").
 *
 * On the first signal:
 * 1. every new request but health answers 503 with Retry-After (ServiceState), keep-alive connections are told to
 *    close, and the cron jobs stop, so no new work starts;
 * 2. in-flight HTTP requests and a running backup or restore are waited for, up to SHUTDOWN_TIMEOUT_MS. This
 *    happens before app.close() because Nest runs onModuleDestroy hooks (which end the ops event stream that
 *    metrics and alerts listen to) before beforeApplicationShutdown;
 * 3. the WAL is checkpointed and app.close() runs the remaining hooks, closes the HTTP server and the database;
 * 4. exit 0, or 1 when the work did not finish in time or closing failed.
 * A second signal, or SHUTDOWN_TIMEOUT_MS + margin without an exit, ends the process at once with exit code 1.
 *
 * Returns a function that removes the handlers again (for tests).
 */
export function installGracefulShutdown(
  app: INestApplication,
  config: AppConfig,
  logger: LoggerService = new Logger('Shutdown'),
  options: GracefulShutdownOptions = {},
): () => void {
  const signals = options.signals ?? SHUTDOWN_SIGNALS;
  const marginMs = options.marginMs ?? FORCE_EXIT_MARGIN_MS;
  const exit = options.exit ?? ((code: number): void => process.exit(code));
  const source = options.signalSource ?? process;
  const state = app.get(ServiceState);
  const lock = app.get(OperationLock);
  const server = app.getHttpServer() as Server;

  let inFlight = 0;
  let stopping = false;
  let exited = false;
  const finish = (code: number): void => {
    if (!exited) {
      exited = true;
      exit(code);
    }
  };

  const onRequest = (_req: IncomingMessage, res: ServerResponse): void => {
    inFlight += 1;
    if (stopping) {
      // Clients should not reuse a connection to a server that is going away.
      res.setHeader('Connection', 'close');
    }
    res.once('close', () => {
      inFlight -= 1;
    });
  };
  server.on('request', onRequest);

  const idle = (): boolean => inFlight === 0 && lock.running === null;

  /** True when requests and backups/restores finished within `timeoutMs`. */
  const drain = async (timeoutMs: number): Promise<boolean> => {
    const end = Date.now() + timeoutMs;
    let idleChecks = 0;
    while (idleChecks < 2) {
      idleChecks = idle() ? idleChecks + 1 : 0;
      if (idleChecks === 2) {
        break;
      }
      if (Date.now() >= end) {
        return false;
      }
      await sleep(IDLE_POLL_MS);
    }
    return true;
  };

  const stopCronJobs = (): void => {
    try {
      const registry = app.get(SchedulerRegistry, { strict: false });
      for (const job of registry.getCronJobs().values()) {
        void job.stop();
      }
    } catch (error) {
      logger.warn(`Could not stop the cron jobs: ${describe(error)}`);
    }
  };

  /** Replication ships its last commits before the checkpoint below truncates the WAL they are in. */
  const shipReplication = async (): Promise<void> => {
    let replication: ReplicationService;
    try {
      replication = app.get(ReplicationService, { strict: false });
    } catch {
      // An app without replication (tests build smaller ones).
      return;
    }
    try {
      await replication.shutdown();
    } catch (error) {
      logger.warn(`Replication did not stop cleanly: ${describe(error)}`);
    }
  };

  const checkpoint = (): void => {
    try {
      const db = app.get<SqliteHandle>(SQLITE_HANDLE, { strict: false });
      const [result] = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number; checkpointed: number }[];
      if (result !== undefined && result.busy !== 0) {
        logger.warn('The WAL checkpoint was blocked by another connection; SQLite completes it on close');
      }
    } catch (error) {
      logger.warn(`WAL checkpoint failed: ${describe(error)}`);
    }
  };

  const shutdown = async (signal: NodeJS.Signals): Promise<void> => {
    const timeoutMs = config.shutdownTimeoutMs;
    const deadline = setTimeout(() => {
      logger.error(`Shutdown did not complete within ${timeoutMs + marginMs} ms: exiting with code 1`);
      finish(1);
    }, timeoutMs + marginMs);
    deadline.unref();

    logger.log(`Received ${signal}: refusing new work, waiting up to ${timeoutMs} ms for running work`);
    state.beginShutdown();
    stopCronJobs();
    server.closeIdleConnections();

    let code = 0;
    try {
      if (!(await drain(timeoutMs))) {
        code = 1;
        const running = lock.running === null ? '' : ` (a ${lock.running} is still running)`;
        logger.error(`Running work did not finish within ${timeoutMs} ms${running}: closing anyway`);
      }
      await shipReplication();
      checkpoint();
      await app.close();
      logger.log(code === 0 ? 'Shut down cleanly' : 'Shut down after the timeout');
    } catch (error) {
      code = 1;
      logger.error(`Shutdown failed: ${describe(error)}`);
    } finally {
      clearTimeout(deadline);
    }
    finish(code);
  };

  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.error(`Received ${signal} again: exiting now with code 1`);
      finish(1);
      return;
    }
    stopping = true;
    void shutdown(signal);
  };
  for (const signal of signals) {
    source.on(signal, onSignal);
  }

  return () => {
    for (const signal of signals) {
      source.off(signal, onSignal);
    }
    server.off('request', onRequest);
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}
