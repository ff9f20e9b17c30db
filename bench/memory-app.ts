/**
 * Child process of bench/memory.bench.ts: the compiled app (path in argv[2]) listening on loopback, answering
 * the bench's questions about its own memory over IPC. A process of its own so that its RSS is the app's alone and
 * so that each variant can start with its own environment (MALLOC_ARENA_MAX is read by glibc at process start).
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import type * as AppSetupModule from '../src/app.setup';
import type * as AppConfigModule from '../src/config/app-config';

export interface MemorySample {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** glibc and every native allocation (SQLite, OpenSSL, V8's own malloc) show here, not in the heap figures. */
  rssAnon: number;
  rssFile: number;
  /** V8's malloc'd memory outside its heap (compiled code metadata, zones). */
  mallocedMemory: number;
  threads: number;
}

export type MemoryAppCommand =
  { type: 'sample' } | { type: 'snapshot'; file: string } | { type: 'gc' } | { type: 'exit' };
export type MemoryAppReply =
  | { type: 'ready'; port: number; apiKey: string }
  | { type: 'sample'; sample: MemorySample }
  | { type: 'snapshot'; file: string }
  | { type: 'gc' };

function status(field: string, text: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(text);
  return match ? Number(match[1]) * (field === 'Threads' ? 1 : 1024) : NaN;
}

function sample(): MemorySample {
  const usage = process.memoryUsage();
  const text = readFileSync('/proc/self/status', 'utf8');
  return {
    rss: usage.rss,
    heapTotal: usage.heapTotal,
    heapUsed: usage.heapUsed,
    external: usage.external,
    arrayBuffers: usage.arrayBuffers,
    rssAnon: status('RssAnon', text),
    rssFile: status('RssFile', text),
    mallocedMemory: v8.getHeapStatistics().malloced_memory,
    threads: status('Threads', text),
  };
}

async function main(): Promise<void> {
  const [root, dbPath, apiKey] = process.argv.slice(2);
  /* eslint-disable @typescript-eslint/no-require-imports -- the compiled app of this bench run, by path */
  const setup = require(path.join(root, 'app.setup')) as typeof AppSetupModule;
  const configModule = require(path.join(root, 'config', 'app-config')) as typeof AppConfigModule;
  /* eslint-enable @typescript-eslint/no-require-imports */
  const config = configModule.loadConfig({
    MISSION_CONTROL_DB_PATH: dbPath,
    AUTH_USER: 'bench-admin',
    AUTH_PASS: 'bench-password-123',
    API_KEY: apiKey,
    LOG_LEVEL: 'error',
  });
  const app = await setup.createApp(config);
  app.useLogger(['error']);
  await app.listen(0, '127.0.0.1');
  const port = (app.getHttpServer().address() as AddressInfo).port;
  process.on('message', (command: MemoryAppCommand) => {
    if (command.type === 'sample') {
      process.send?.({ type: 'sample', sample: sample() } satisfies MemoryAppReply);
    } else if (command.type === 'gc') {
      (globalThis as { gc?: () => void }).gc?.();
      process.send?.({ type: 'gc' } satisfies MemoryAppReply);
    } else if (command.type === 'snapshot') {
      v8.writeHeapSnapshot(command.file);
      process.send?.({ type: 'snapshot', file: command.file } satisfies MemoryAppReply);
    } else {
      void app.close().then(() => process.exit(0));
    }
  });
  process.once('disconnect', () => process.exit(0));
  process.send?.({ type: 'ready', port, apiKey } satisfies MemoryAppReply);
}

if (process.send !== undefined) {
  main().catch((error: unknown) => {
    process.stderr.write(
      `memory-app failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  });
}
