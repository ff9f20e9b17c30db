import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { typeScriptEntrySource } from '../common/typescript-entry';
import {
  type CheckpointMode,
  type CheckpointOutcome,
  type ReadOutcome,
  type SegmentTarget,
  ShipperIoCore,
  type ShipperIoOptions,
} from './shipper-io';
import type { ShipperState } from './spool';
import type { WalPosition } from './wal-reader';

export type CheckpointState = ShipperState & { position: WalPosition; generation: string };

/** What the shipper asks of its I/O: on a worker thread in the service, or inline (the benchmark's baseline). */
export interface ShipperIo {
  read(from: WalPosition, maxBytes: number, target: SegmentTarget): Promise<ReadOutcome | null>;
  checkpoint(
    state: CheckpointState,
    mode: CheckpointMode,
    waitMs: number,
    target: SegmentTarget,
  ): Promise<CheckpointOutcome>;
  close(): void;
}

type RequestBody =
  | { op: 'read'; from: WalPosition; maxBytes: number; target: SegmentTarget }
  | { op: 'checkpoint'; state: CheckpointState; mode: CheckpointMode; waitMs: number; target: SegmentTarget };

export type ShipperRequest = (RequestBody & { id: number }) | { op: 'close' };

export type ShipperReply =
  { id: number; result: ReadOutcome | CheckpointOutcome | null } | { id: number; error: string };

/** Runs one request on a core (the worker's message handler, and the inline variant). */
export function handle(core: ShipperIoCore, body: RequestBody): ReadOutcome | CheckpointOutcome | null {
  return body.op === 'read'
    ? core.read(body.from, body.maxBytes, body.target)
    : core.checkpoint(body.state, body.mode, body.waitMs, body.target);
}

/** Everything on the calling thread: the same code, measured by the benchmark against the worker. */
export class InlineShipperIo implements ShipperIo {
  private readonly core: ShipperIoCore;

  constructor(options: ShipperIoOptions) {
    this.core = new ShipperIoCore(options);
  }

  read(from: WalPosition, maxBytes: number, target: SegmentTarget): Promise<ReadOutcome | null> {
    return Promise.resolve(this.core.read(from, maxBytes, target));
  }

  checkpoint(
    state: CheckpointState,
    mode: CheckpointMode,
    waitMs: number,
    target: SegmentTarget,
  ): Promise<CheckpointOutcome> {
    return Promise.resolve(this.core.checkpoint(state, mode, waitMs, target));
  }

  close(): void {
    this.core.close();
  }
}

function startWorker(options: ShipperIoOptions): Worker {
  // As in snapshot.ts: the .js sibling when compiled, the TypeScript entry under ts-jest / ts-node.
  if (__filename.endsWith('.ts')) {
    // eslint-disable-next-line no-restricted-properties -- a test hook, not configuration; only on the .ts path
    const tripwire = process.env.MC_LIVE_DB_TRIPWIRE;
    const bootstrap = typeScriptEntrySource(path.join(__dirname, 'shipper.worker.ts'), tripwire ? [tripwire] : []);
    return new Worker(bootstrap, { eval: true, workerData: { ...options } });
  }
  return new Worker(path.join(__dirname, 'shipper.worker.js'), { workerData: { ...options } });
}

interface Waiter {
  resolve: (value: ReadOutcome | CheckpointOutcome | null) => void;
  reject: (error: Error) => void;
}

/**
 * One long-lived worker thread per shipper: starting a thread (and, from TypeScript, its loader) per segment
 * would cost more than the segment itself. Referenced only while a request is pending, so an idle shipper
 * never keeps the process alive.
 */
export class ThreadShipperIo implements ShipperIo {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, Waiter>();
  private nextId = 1;
  private dead: Error | null = null;

  constructor(options: ShipperIoOptions) {
    this.worker = startWorker(options);
    this.worker.unref();
    this.worker.on('message', (reply: ShipperReply) => this.onReply(reply));
    this.worker.on('error', (error: Error) => this.failAll(new Error(`the shipper thread failed: ${error.message}`)));
    this.worker.on('exit', (code) => this.failAll(new Error(`the shipper thread exited (code ${code})`)));
  }

  read(from: WalPosition, maxBytes: number, target: SegmentTarget): Promise<ReadOutcome | null> {
    return this.request({ op: 'read', from, maxBytes, target }) as Promise<ReadOutcome | null>;
  }

  checkpoint(
    state: CheckpointState,
    mode: CheckpointMode,
    waitMs: number,
    target: SegmentTarget,
  ): Promise<CheckpointOutcome> {
    return this.request({ op: 'checkpoint', state, mode, waitMs, target }) as Promise<CheckpointOutcome>;
  }

  /** The thread closes its connections and ends by itself (a terminate could cut a checkpoint short). */
  close(): void {
    if (this.dead === null) {
      this.worker.postMessage({ op: 'close' } satisfies ShipperRequest);
    }
    this.dead ??= new Error('the shipper thread is closed');
  }

  private request(body: RequestBody): Promise<ReadOutcome | CheckpointOutcome | null> {
    if (this.dead !== null) {
      return Promise.reject(this.dead);
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.ref();
      this.worker.postMessage({ id, ...body } satisfies ShipperRequest);
    });
  }

  private onReply(reply: ShipperReply): void {
    const waiter = this.waiting.get(reply.id);
    this.waiting.delete(reply.id);
    if (this.waiting.size === 0) {
      this.worker.unref();
    }
    if (waiter === undefined) {
      return;
    }
    if ('error' in reply) {
      waiter.reject(new Error(reply.error));
    } else {
      waiter.resolve(reply.result);
    }
  }

  private failAll(error: Error): void {
    this.dead ??= error;
    for (const waiter of this.waiting.values()) {
      waiter.reject(error);
    }
    this.waiting.clear();
  }
}
