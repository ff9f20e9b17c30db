import * as path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { typeScriptEntrySource } from '../common/typescript-entry';
import type { SealJob, SealReply, SealRequest } from './age-seal.worker';
import { type AgeDigests, type AgeEncryptOptions, finishDigests, newAgeFile } from './age-stream';

/** Plaintext handed to the thread and not yet sealed: enough to keep it busy, little enough to keep memory flat. */
const MAX_IN_FLIGHT = 4 * 1024 * 1024;
/** Enough spare buffers to cover MAX_IN_FLIGHT in the 1 MiB reads the upload makes, plus one. */
const MAX_SPARES = 5;

function startSealWorker(job: SealJob): Worker {
  // As in snapshot.ts: the .js sibling when compiled, the TypeScript entry under ts-jest / ts-node.
  if (__filename.endsWith('.ts')) {
    const bootstrap = typeScriptEntrySource(path.join(__dirname, 'age-seal.worker.ts'));
    return new Worker(bootstrap, { eval: true, workerData: job });
  }
  return new Worker(path.join(__dirname, 'age-seal.worker.js'), { workerData: job });
}

/**
 * Plaintext in, an age v1 file out, like AgeEncryptStream, but sealed and hashed in a worker thread of its own:
 * the event loop only copies bytes across, so on two cores the cipher and both sha256 run beside the upload. One
 * thread per stream, ended with it.
 */
export class AgeThreadedEncryptStream extends Transform {
  private readonly worker: Worker;
  private inFlight = 0;
  /** Plaintext buffers the thread has finished with, reused for the next copies. */
  private readonly spares: ArrayBuffer[] = [];
  private waiting: TransformCallback | null = null;
  private flushed: TransformCallback | null = null;
  private finished = false;
  private result: AgeDigests | null = null;

  constructor(
    recipients: readonly string[],
    private readonly options: AgeEncryptOptions = {},
  ) {
    super();
    const { key, prefix } = newAgeFile(recipients);
    const hash = options.hash === true || options.check !== undefined;
    // workerData is copied when the thread is created: this thread's copy of the key is wiped at once.
    this.worker = startSealWorker({ key, prefix, hash });
    key.fill(0);
    // Referenced only while it owes replies: an abandoned stream must not keep the process alive.
    this.worker.unref();
    this.worker.on('message', (reply: SealReply) => this.onReply(reply));
    this.worker.on('error', (error: Error) => this.fail(new Error(`the encryption thread failed: ${error.message}`)));
    this.worker.on('exit', (code) => {
      if (!this.finished) {
        this.fail(new Error(`the encryption thread exited (code ${code}) before the end of the stream`));
      }
    });
  }

  /** The digests of a finished stream (with `hash` or `check`); throws before the stream has ended. */
  digests(): AgeDigests {
    if (this.result === null) {
      throw new Error('the age stream has not finished (or was not hashed)');
    }
    return this.result;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    // A copy the thread can own (the caller's buffer may be a slice of a shared pool), into a buffer it gave back.
    const spare = this.spares.findIndex((buffer) => buffer.byteLength === chunk.length);
    const data = spare >= 0 ? this.spares.splice(spare, 1)[0] : new ArrayBuffer(chunk.length);
    chunk.copy(new Uint8Array(data));
    this.inFlight += data.byteLength;
    this.post({ data }, [data]);
    this.waiting = callback;
    this.takeMore();
  }

  /**
   * Acknowledges the last write once the thread holds less than MAX_IN_FLIGHT. The readable side needs no count
   * here: a callback released after output was pushed is held by Node's Transform itself until the reader has
   * drained that output below its highWaterMark.
   */
  private takeMore(): void {
    const waiting = this.waiting;
    if (waiting !== null && this.inFlight < MAX_IN_FLIGHT) {
      this.waiting = null;
      waiting();
    }
  }

  override _flush(callback: TransformCallback): void {
    this.flushed = callback;
    this.post({ end: true }, []);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.finished = true;
    void this.worker.terminate();
    callback(error);
  }

  private post(request: SealRequest, transfer: ArrayBuffer[]): void {
    this.worker.ref();
    this.worker.postMessage(request, transfer);
  }

  private onReply(reply: SealReply): void {
    if ('error' in reply) {
      this.fail(new Error(reply.error));
      return;
    }
    if (!reply.last) {
      for (const piece of reply.sealed) {
        this.push(Buffer.from(piece));
      }
      this.inFlight -= reply.input.byteLength;
      if (this.spares.length < MAX_SPARES) {
        this.spares.push(reply.input);
      }
      if (this.inFlight === 0) {
        this.worker.unref();
      }
      this.takeMore();
      return;
    }
    this.finished = true;
    void this.worker.terminate();
    this.result = reply.digests;
    const flushed = this.flushed;
    this.flushed = null;
    flushed?.(finishDigests(reply.digests, this.options), Buffer.from(reply.sealed[0]));
  }

  private fail(error: Error): void {
    if (this.finished) {
      return;
    }
    this.finished = true;
    void this.worker.terminate();
    const pending = this.flushed ?? this.waiting;
    this.flushed = null;
    this.waiting = null;
    if (pending !== null) {
      pending(error);
    } else {
      this.destroy(error);
    }
  }
}
