import type { INestApplication, LoggerService } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { EventEmitter } from 'node:events';
import { ServiceState } from '../common/availability';
import { OperationLock } from '../common/operation-lock';
import { loadConfig } from '../config/app-config';
import { SQLITE_HANDLE } from '../database/sqlite-handle';
import { installGracefulShutdown } from './graceful-shutdown';

class FakeResponse extends EventEmitter {
  readonly headers: Record<string, string> = {};
  setHeader(name: string, value: string): void {
    this.headers[name] = value;
  }
}

function setup(options: { timeoutMs?: number; close?: () => Promise<void> } = {}) {
  const events: string[] = [];
  const state = new ServiceState();
  const lock = new OperationLock();
  const server = Object.assign(new EventEmitter(), {
    closeIdleConnections: jest.fn(() => events.push('closeIdleConnections')),
  });
  const cron = { stop: jest.fn(() => events.push('cron.stop')) };
  const registry = { getCronJobs: () => new Map([['auto_backup', cron]]) };
  const db = { pragma: jest.fn(() => (events.push('checkpoint'), [{ busy: 0, log: 0, checkpointed: 0 }])) };
  const close = jest.fn(
    options.close ??
      (() => {
        events.push('app.close');
        return Promise.resolve();
      }),
  );
  const app = {
    get: (token: unknown) => {
      const map = new Map<unknown, unknown>([
        [ServiceState, state],
        [OperationLock, lock],
        [SchedulerRegistry, registry],
        [SQLITE_HANDLE, db],
      ]);
      return map.get(token);
    },
    getHttpServer: () => server,
    close,
  } as unknown as INestApplication;
  const config = loadConfig({ SHUTDOWN_TIMEOUT_MS: String(options.timeoutMs ?? 1000) });
  const signals = new EventEmitter();
  const exit = jest.fn((code: number) => events.push(`exit ${code}`));
  const logger: LoggerService = { log: jest.fn(), warn: jest.fn(), error: jest.fn() };
  const uninstall = installGracefulShutdown(app, config, logger, { exit, signalSource: signals, marginMs: 500 });
  return { events, state, lock, server, cron, db, close, signals, exit, uninstall };
}

describe('installGracefulShutdown', () => {
  beforeEach(() => {
    jest.useFakeTimers();
  });

  afterEach(() => {
    jest.useRealTimers();
  });

  describe('on SIGTERM', () => {
    it('should refuse new work, wait for the running backup and requests, then close and exit 0', async () => {
      const s = setup();
      let finishBackup!: () => void;
      const backup = s.lock.runExclusive('backup', () => new Promise<void>((resolve) => (finishBackup = resolve)));
      const res = new FakeResponse();
      s.server.emit('request', {}, res);

      s.signals.emit('SIGTERM', 'SIGTERM');
      expect(s.state.shuttingDown).toBe(true);
      expect(s.events).toEqual(['cron.stop', 'closeIdleConnections']);

      // A request arriving now is told to close its connection.
      const late = new FakeResponse();
      s.server.emit('request', {}, late);
      expect(late.headers).toEqual({ Connection: 'close' });
      late.emit('close');

      await jest.advanceTimersByTimeAsync(500);
      expect(s.close).not.toHaveBeenCalled();
      finishBackup();
      await backup;
      await jest.advanceTimersByTimeAsync(100);
      expect(s.close).not.toHaveBeenCalled();
      res.emit('close');
      await jest.advanceTimersByTimeAsync(100);
      expect(s.events).toEqual(['cron.stop', 'closeIdleConnections', 'checkpoint', 'app.close', 'exit 0']);
      expect(s.db.pragma).toHaveBeenCalledWith('wal_checkpoint(TRUNCATE)');
      s.uninstall();
    });

    it('should close anyway and exit 1 when the work outlasts SHUTDOWN_TIMEOUT_MS', async () => {
      const s = setup({ timeoutMs: 1000 });
      void s.lock.runExclusive('restore', () => new Promise<void>(() => undefined));
      s.signals.emit('SIGTERM', 'SIGTERM');
      await jest.advanceTimersByTimeAsync(900);
      expect(s.close).not.toHaveBeenCalled();
      await jest.advanceTimersByTimeAsync(200);
      expect(s.events.slice(-3)).toEqual(['checkpoint', 'app.close', 'exit 1']);
      s.uninstall();
    });

    it('should exit 1 at the hard deadline when closing hangs', async () => {
      const s = setup({ timeoutMs: 1000, close: () => new Promise<void>(() => undefined) });
      s.signals.emit('SIGTERM', 'SIGTERM');
      await jest.advanceTimersByTimeAsync(1000 + 499);
      expect(s.exit).not.toHaveBeenCalled();
      await jest.advanceTimersByTimeAsync(2);
      expect(s.exit.mock.calls).toEqual([[1]]);
      s.uninstall();
    });

    it('should exit 1 when closing fails', async () => {
      const s = setup({ close: () => Promise.reject(new Error('boom')) });
      s.signals.emit('SIGTERM', 'SIGTERM');
      await jest.advanceTimersByTimeAsync(100);
      expect(s.exit.mock.calls).toEqual([[1]]);
      s.uninstall();
    });
  });

  describe('on a second signal', () => {
    it('should exit 1 at once, and only once', async () => {
      const s = setup();
      void s.lock.runExclusive('backup', () => new Promise<void>(() => undefined));
      s.signals.emit('SIGTERM', 'SIGTERM');
      s.signals.emit('SIGINT', 'SIGINT');
      expect(s.exit.mock.calls).toEqual([[1]]);
      await jest.advanceTimersByTimeAsync(5000);
      expect(s.exit.mock.calls).toEqual([[1]]);
      s.uninstall();
    });
  });
});
